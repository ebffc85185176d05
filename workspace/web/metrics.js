/* metrics.js: the jobs' metric curves (docs/metrics.md): a chart
 * per metric on the job page that follows the job live, and the compare
 * page (/compare?jobs=1,2&metric=loss) that overlays one metric of several
 * jobs.
 *
 * Charts are SVG drawn here, from the rows of GET /api/v1/jobs/{id}/metrics
 * ([start, n, step, time, value, min, max], docs/protocol.md "Metrics"):
 * the x axis is the step, or the seconds since the first point when a
 * series has points without a step; the line goes through each bucket's
 * last value and a band shows its min and max once buckets hold several
 * points.  Each line carries its data as attributes (data-name, data-job,
 * data-attempt, data-rows, data-last-x, data-last-y) for tests and tools.
 * The job page follows with `since` and the long-poll (`wait`); the
 * compare page reads the jobs again every few seconds. */
"use strict";

(function () {
  const T = window.Tether;
  const h = T.h;
  const NS = "http://www.w3.org/2000/svg";
  const WAIT = 25; /* seconds a metrics long-poll may be held */
  /* line colours, each at least 4.5:1 against white */
  const COLOURS = ["#0a4fb3", "#a40e26", "#116329", "#7a4a00", "#6639ba",
    "#1b1f24"];
  const W = 560, H = 220, L = 60, R = 12, TOP = 10, B = 30;

  function s(tag, attrs, ...kids) {
    const el = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs || {}))
      if (v !== null && v !== undefined)
        el.setAttribute(k, String(v));
    for (const k of kids.flat(Infinity))
      if (k !== null && k !== undefined)
        el.appendChild(k instanceof Node ? k : document.createTextNode(String(k)));
    return el;
  }

  function fmt(v) {
    if (!Number.isFinite(v))
      return "";
    const a = Math.abs(v);
    return a !== 0 && (a >= 1e5 || a < 1e-3) ? v.toExponential(2)
      : String(Number(v.toPrecision(4)));
  }

  /* Rows -> points {x, y, lo, hi} on the series' own x axis. */
  function points(rows, byTime) {
    const t0 = rows.length ? rows[0][3] : 0;
    return rows.map((r) => ({x: byTime ? r[3] - t0 : r[2], y: r[4],
      lo: r[5], hi: r[6], n: r[1]}));
  }

  /* A chart of lines [{label, name, job, attempt, rows}], all by step unless
   * one has a point without a step. */
  T.chart = function chart(title, lines) {
    const byTime = lines.some((l) => l.rows.some((r) => r[2] === null));
    const pts = lines.map((l) => points(l.rows, byTime));
    const all = pts.flat();
    let x0 = Math.min(...all.map((p) => p.x)), x1 = Math.max(...all.map((p) => p.x));
    let y0 = Math.min(...all.map((p) => p.lo)), y1 = Math.max(...all.map((p) => p.hi));
    if (!all.length)
      x0 = 0, x1 = 1, y0 = 0, y1 = 1;
    if (x1 === x0)
      x1 = x0 + 1;
    if (y1 === y0)
      y0 -= 0.5, y1 += 0.5;
    const px = (x) => (L + (x - x0) / (x1 - x0) * (W - L - R)).toFixed(1);
    const py = (y) => (TOP + (y1 - y) / (y1 - y0) * (H - TOP - B)).toFixed(1);
    const svg = s("svg", {viewBox: `0 0 ${W} ${H}`, class: "chart", role: "img",
      "aria-label": title + " by " + (byTime ? "time" : "step"),
      "data-x": byTime ? "time" : "step"},
    s("line", {x1: L, y1: H - B, x2: W - R, y2: H - B, class: "axis"}),
    s("line", {x1: L, y1: TOP, x2: L, y2: H - B, class: "axis"}),
    [y1, (y0 + y1) / 2, y0].map((y) => s("text", {x: L - 4, y: Number(py(y)) + 4,
      class: "tick", "text-anchor": "end"}, fmt(y))),
    s("text", {x: L, y: H - 8, class: "tick"}, fmt(x0)),
    s("text", {x: W - R, y: H - 8, class: "tick", "text-anchor": "end"}, fmt(x1)),
    s("text", {x: (L + W - R) / 2, y: H - 8, class: "tick", "text-anchor": "middle"},
      byTime ? "seconds" : "step"));
    lines.forEach((l, i) => {
      const p = pts[i];
      const colour = COLOURS[i % COLOURS.length];
      if (p.some((q) => q.n > 1))
        svg.appendChild(s("polygon", {class: "band", fill: colour,
          points: p.map((q) => px(q.x) + "," + py(q.hi)).concat(p.slice().reverse()
            .map((q) => px(q.x) + "," + py(q.lo))).join(" ")}));
      const last = p.length ? p[p.length - 1] : null;
      svg.appendChild(s("polyline", {class: "line", stroke: colour,
        points: p.map((q) => px(q.x) + "," + py(q.y)).join(" "),
        "data-name": l.name, "data-job": l.job, "data-attempt": l.attempt,
        "data-rows": p.length, "data-last-x": last ? last.x : null,
        "data-last-y": last ? last.y : null}));
      if (last) /* the latest point, visible even when it is the only one */
        svg.appendChild(s("circle", {class: "dot", fill: colour, r: 3,
          cx: px(last.x), cy: py(last.y)}));
    });
    const legend = h("ul", {class: "legend"}, lines.map((l, i) =>
      h("li", {}, s("svg", {viewBox: "0 0 10 10", class: "swatch"},
        s("rect", {width: 10, height: 10, fill: COLOURS[i % COLOURS.length]})),
      l.label)));
    return h("figure", {class: "chartbox", "data-metric": title},
      h("figcaption", {}, title), svg, legend);
  };

  /* Merge a reply into held (key name/attempt -> series): the returned
   * rows replace those from the first returned start on. */
  function merge(held, reply) {
    for (const ser of reply.series) {
      const key = ser.name + "/" + ser.attempt;
      const old = held.get(key);
      if (old && ser.points.length) {
        const first = ser.points[0][0];
        ser.points = old.points.filter((r) => r[0] < first).concat(ser.points);
      } else if (old) {
        ser.points = old.points;
      }
      held.set(key, ser);
    }
  }

  /* One chart per metric name, a line per attempt. */
  function drawJob(box, job, held) {
    const names = [...new Set([...held.values()].map((x) => x.name))].sort();
    if (!names.length) {
      box.replaceChildren(h("p", {class: "muted"}, "No metrics."));
      return;
    }
    box.replaceChildren(h("div", {class: "charts"}, names.map((n) => {
      const sers = [...held.values()].filter((x) => x.name === n)
        .sort((a, b) => a.attempt - b.attempt);
      return T.chart(n, sers.map((x) => ({name: n, job, attempt: x.attempt,
        rows: x.points, label: "attempt " + x.attempt + ": last " +
          fmt(x.last ? x.last.value : NaN) + ", min " + fmt(x.min) + ", max " +
          fmt(x.max) + ", " + x.count + " points"})));
    })));
  }

  /* The job page's metrics: follow them until the job ended. */
  T.metricsFollow = async function metricsFollow(id, box, signal, stopped) {
    const held = new Map();
    let since = 0;
    let first = true;
    while (!stopped()) {
      let r;
      try {
        r = await T.api("GET", "jobs/" + id + "/metrics" + T.q({since,
          wait: first ? 0 : WAIT}), {signal});
      } catch (e) {
        if (stopped() || e.status === 404)
          return;
        await new Promise((res) => setTimeout(res, 1000));
        continue;
      }
      const fresh = r.series.length > 0;
      merge(held, r);
      if (fresh || first)
        drawJob(box, id, held);
      since = r.cursor;
      first = false;
      if (!fresh) {
        const j = await T.api("GET", "jobs/" + id).catch(() => null);
        if (j && T.TERMINAL.has(j.state))
          return;
      }
    }
  };

  /* /compare?jobs=1,2&metric=loss: one metric of several jobs, overlaid. */
  T.comparePage = function comparePage() {
    const params = new URLSearchParams(location.search);
    const ids = (params.get("jobs") || "").split(",").map(Number)
      .filter((n) => Number.isInteger(n) && n > 0).slice(0, 12);
    const jobsIn = h("input", {name: "jobs", type: "text", id: "compare-jobs",
      value: ids.join(","), "aria-describedby": "compare-help"});
    const metric = h("select", {name: "metric", id: "compare-metric"});
    const form = h("form", {class: "filters", role: "search"},
      h("label", {}, "Jobs", jobsIn), h("label", {}, "Metric", metric),
      h("button", {type: "submit"}, "Compare"));
    const box = h("div", {id: "compare-chart"});
    const el = h("section", {"aria-labelledby": "compare-h"},
      h("h1", {id: "compare-h"}, "Compare runs"), form,
      h("p", {class: "muted", id: "compare-help"},
        "Job ids separated by commas; pick them on the Jobs page with the " +
        "check boxes."), box);
    form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      T.go("/compare" + T.q({jobs: jobsIn.value.replace(/\s+/g, ""),
        metric: metric.value}));
    });
    let timer = null;
    let stopped = false;
    async function load() {
      const replies = await Promise.all(ids.map((j) =>
        T.api("GET", "jobs/" + j + "/metrics").catch(() => ({series: []}))));
      const names = [...new Set(replies.flatMap((r) => r.series.map((x) =>
        x.name)))].sort();
      const want = params.get("metric") || metric.value || names[0] || "";
      metric.replaceChildren(...names.map((n) => h("option",
        {value: n, selected: n === want}, n)));
      const lines = [];
      replies.forEach((r, i) => {
        for (const x of r.series.filter((y) => y.name === want))
          lines.push({label: "job #" + ids[i] + (x.attempt > 1 ? " attempt " +
            x.attempt : "") + ": last " + fmt(x.last ? x.last.value : NaN),
          name: want, job: ids[i], attempt: x.attempt, rows: x.points});
      });
      box.replaceChildren(lines.length ? T.chart(want, lines)
        : h("p", {class: "muted"}, ids.length ? "No such metric in these jobs."
          : "Pick jobs to compare."));
    }
    const tick = async () => {
      try {
        await load();
      } catch (e) {
        if (e.status !== 401)
          T.status("Cannot load: " + e.message);
      }
      if (!stopped)
        timer = setTimeout(tick, 3000);
    };
    tick();
    return {el, stop() { stopped = true; clearTimeout(timer); }};
  };
})();
