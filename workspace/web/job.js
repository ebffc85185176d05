/* job.js: the job page: state, facts, status timeline, outputs, a cancel
 * button, and the live log.
 *
 * The log follows the latest attempt by offset with the long-poll
 * (GET /api/v1/jobs/{id}/log?attempt=&offset=&wait=): a reply comes as soon
 * as bytes are appended, so a line shows within a frame of its arrival.
 * When an attempt ends (Tether-Log-Complete) the page reads the job again
 * and follows a newer attempt from offset 0, or stops.  The metrics
 * section (metrics.js) follows the job's metric curves.
 *
 * A multi-node job (docs/multi-node.md) gets a Ranks table: each rank of
 * its current gang with its agent, state, exit and a link to its log,
 * /jobs/N?rank=K; the log then follows rank K (…/log?rank=K), else rank 0. */
"use strict";

(function () {
  const T = window.Tether;
  const h = T.h;
  const WAIT = 25; /* seconds a log long-poll may be held */

  function facts(pairs) {
    return h("dl", {class: "facts"}, pairs.filter((p) => p[1] !== "" &&
      p[1] !== null && p[1] !== undefined).map(([k, v]) => [h("dt", {}, k),
      h("dd", {}, v)]));
  }

  function jobFacts(job) {
    /* the current attempt (a gang's rank 0), else the latest */
    const a = job.attempts.find((x) => x.attempt === job.attempt) ||
      (job.attempts.length ? job.attempts[job.attempts.length - 1] : {});
    return facts([
      ["State", T.badge(job.state)],
      ["Sub-state", job.substate ? job.substate + (job.substate_reason ?
        " (" + job.substate_reason + ")" : "") : ""],
      ["Reason", job.reason || job.queue_reason || ""],
      ["Agent", a.agent || ""],
      ["Attempt", job.attempt ? job.attempt + " of at most " + (job.retries + 1) : ""],
      ["Priority", String(job.priority)],
      ["Submitted", T.time(job.submitted_at)],
      ["Ended", T.time(job.ended_at)],
      ["Exit code", a.exit_code ?? (a.signal ? "signal " + a.signal : "")],
      ["Peak memory", T.bytes(a.peak_memory_bytes)],
      ["CPU time", T.secs(a.cpu_seconds)],
      ["Durations", T.phaseText(a.durations)],
      ["Commit", a.commit || ""],
      ["Message", a.message || ""],
      ["Command", (job.spec && job.spec.command || []).join(" ")],
    ]);
  }

  function eventText(ev) {
    switch (ev.type) {
    case "phase":
      return ev.phase + " " + (ev.state === "start" ? "started" : "ended") +
        (ev.duration !== undefined ? " (" + T.secs(ev.duration) + ")" : "");
    case "started":
      return "job process started" + (ev.pid ? " (pid " + ev.pid + ")" : "");
    case "progress":
      return "progress " + ev.value;
    case "pending":
      return ev.pending ? "pending in the launcher's queue" +
        (ev.reason ? " (" + ev.reason + ")" : "") : "left the launcher's queue";
    case "final":
      return "ended: " + ev.reason + (ev.exit_code !== null &&
        ev.exit_code !== undefined ? " (exit " + ev.exit_code + ")" : "");
    default:
      return ev.type;
    }
  }

  /* Job times, attempt leases and ends, and the agent's events. */
  function timeline(job, events) {
    const items = [[job.submitted_at, "submitted"]];
    for (const a of job.attempts) {
      items.push([a.started_at, "attempt " + a.attempt + " given to " + a.agent]);
      for (const ev of events.filter((e) => e.attempt === a.attempt))
        if (ev.type !== "progress")
          items.push([ev.time, "attempt " + a.attempt + ": " + eventText(ev)]);
      if (a.ended_at)
        items.push([a.ended_at, "attempt " + a.attempt + " " +
          (a.reason || a.state)]);
    }
    if (job.cancel_requested)
      items.push([null, "cancel requested"]);
    if (job.ended_at)
      items.push([job.ended_at, "job " + job.state]);
    return h("ol", {class: "timeline"}, items.map(([t, what]) =>
      h("li", {}, t ? h("time", {datetime: T.time(t)}, T.time(t)) : null, what)));
  }

  function outputsList(job, out) {
    if (!out || !out.outputs.length)
      return h("p", {class: "muted"}, "No outputs.");
    return h("ul", {}, out.outputs.map((o) => h("li", {},
      h("a", {href: "/api/v1/jobs/" + job.id + "/outputs/" +
        o.path.split("/").map(encodeURIComponent).join("/") + "?attempt=" + out.attempt,
      download: o.path.split("/").pop()}, o.path),
      " ", h("span", {class: "muted"}, T.bytes(o.size)))));
  }

  /* The ranks of a multi-node job's current gang; shown: the rank whose
   * log the page follows. */
  function ranksTable(job, shown) {
    if (!(job.nodes > 1))
      return null;
    if (!job.ranks || !job.ranks.length)
      return h("p", {class: "muted"}, job.nodes + " nodes; no rank has started yet.");
    const head = ["Rank", "Attempt", "Agent", "State", "Exit", "Peak memory", "Log"];
    return h("table", {id: "ranks"},
      h("thead", {}, h("tr", {}, head.map((x) => h("th", {scope: "col"}, x)))),
      h("tbody", {}, job.ranks.map((r) => h("tr", {"data-rank": r.rank},
        h("td", {class: "num"}, String(r.rank)),
        h("td", {class: "num"}, String(r.attempt)),
        h("td", {}, r.agent || ""),
        h("td", {}, T.badge(r.state)),
        h("td", {class: "num"}, r.exit_code ?? (r.signal ? "signal " + r.signal : "")),
        h("td", {class: "num"}, T.bytes(r.peak_memory_bytes)),
        h("td", {}, r.rank === shown ? h("span", {"aria-current": "true"}, "shown below")
          : T.link("/jobs/" + job.id + "?rank=" + r.rank, "rank " + r.rank + " log"))))));
  }

  function cancelBox(job, reload) {
    const box = h("span", {class: "confirm"});
    if (T.role !== "admin" || T.TERMINAL.has(job.state))
      return box;
    const ask = h("button", {type: "button", id: "cancel", class: "danger",
      disabled: job.state === "cancelling"}, "Cancel job");
    const msg = h("span", {role: "alert"});
    ask.addEventListener("click", () => {
      const yes = h("button", {type: "button", id: "cancel-yes", class: "danger"},
        "Yes, cancel job " + job.id);
      const no = h("button", {type: "button", id: "cancel-no"}, "No");
      no.addEventListener("click", () => {
        box.replaceChildren(ask, msg);
        ask.focus();
      });
      yes.addEventListener("click", async () => {
        yes.disabled = true;
        try {
          const r = await T.api("POST", "jobs/" + job.id + "/cancel");
          msg.textContent = "Cancel sent: " + r.state;
        } catch (e) {
          msg.textContent = "Cancel failed: " + e.message;
        }
        box.replaceChildren(msg);
        reload();
      });
      box.replaceChildren(h("span", {}, "Cancel this job?"), yes, no);
      no.focus();
    });
    box.append(ask, msg);
    return box;
  }

  T.jobPage = function jobPage(id) {
    const rq = new URLSearchParams(location.search).get("rank");
    const rank = rq !== null && /^\d+$/.test(rq) ? Number(rq) : 0;
    const title = h("h1", {id: "job-h"}, "Job #" + id);
    const badge = h("span");
    const actions = h("span");
    const factsBox = h("div");
    const tl = h("div");
    const outs = h("div");
    const ranksBox = h("div", {id: "ranks-box"});
    const logEl = h("div", {id: "log", "aria-label": "Log of job " + id});
    const followBtn = h("button", {type: "button", "aria-pressed": "true"}, "Follow");
    const logInfo = h("span", {class: "muted", id: "log-info"});
    const metricsEl = h("div", {id: "metrics"});
    const el = h("section", {"aria-labelledby": "job-h"},
      h("div", {class: "jobhead"}, title, badge, actions),
      h("div", {class: "cols"},
        h("div", {}, h("h2", {}, "Details"), factsBox),
        h("div", {}, h("h2", {}, "Timeline"), tl, h("h2", {}, "Outputs"), outs)),
      ranksBox,
      h("h2", {}, "Metrics"), metricsEl,
      h("h2", {}, "Log"),
      h("div", {class: "logbar"}, followBtn, logInfo), logEl);
    const view = new window.LogView(logEl);
    view.onfollow = (on) => followBtn.setAttribute("aria-pressed", String(on));
    followBtn.addEventListener("click", () => view.setFollow(!view.follow));
    let stopped = false;
    let job = null;
    let timer = null;
    const abort = new AbortController();

    async function load() {
      clearTimeout(timer);
      try {
        const [j, ev, out] = await Promise.all([T.api("GET", "jobs/" + id),
          T.api("GET", "jobs/" + id + "/events").catch(() => ({events: []})),
          T.api("GET", "jobs/" + id + "/outputs").catch(() => null)]);
        job = j;
        title.textContent = "Job #" + id + ": " + j.name;
        document.title = "Tether: " + j.name;
        badge.replaceChildren(T.badge(j.state));
        actions.replaceChildren(cancelBox(j, load));
        factsBox.replaceChildren(jobFacts(j));
        tl.replaceChildren(timeline(j, ev.events));
        outs.replaceChildren(outputsList(j, out));
        const rt = ranksTable(j, rank);
        ranksBox.replaceChildren(...(rt ? [h("h2", {}, "Ranks"), rt] : []));
        T.status("");
      } catch (e) {
        if (e.status === 404)
          title.textContent = "No job #" + id;
        else if (e.status !== 401)
          T.status("Cannot load job: " + e.message);
      }
      if (!stopped && !(job && T.TERMINAL.has(job.state)))
        timer = setTimeout(load, 2000);
      return job;
    }

    /* attempt: the gang followed (its rank 0's attempt); the log read is
     * rank `rank` of it (attempt + rank) */
    async function follow() {
      let attempt = 0;
      let offset = 0;
      while (!stopped) {
        let resp;
        try {
          resp = await T.api("GET", "jobs/" + id + "/log" + T.q({
            attempt: attempt || null, rank: rank || null, offset, wait: WAIT}),
          {raw: true, signal: abort.signal});
        } catch (e) {
          if (stopped)
            return;
          T.status("Log: " + e.message + "; retrying");
          await new Promise((r) => setTimeout(r, 1000));
          continue;
        }
        if (!resp.ok) {
          logInfo.textContent = "no log (HTTP " + resp.status + ")";
          return;
        }
        const got = Number(resp.headers.get("Tether-Attempt") || 0);
        const buf = new Uint8Array(await resp.arrayBuffer());
        if (got && !attempt) {
          attempt = got - rank;
        }
        if (buf.length) {
          view.append(buf);
          offset += buf.length;
        }
        logInfo.textContent = "attempt " + (attempt || "none yet") + ", " +
          (rank ? "rank " + rank + ", " : "") +
          T.bytes(view.bytes) + ", " + view.count() + " lines" +
          (view.dropped ? " (" + view.dropped + " earlier lines let go)" : "");
        if (resp.headers.get("Tether-Log-Complete") === "1") {
          const j = await load();
          if (j && j.attempt > attempt) {
            attempt = j.attempt;
            offset = 0;
            view.mark("--- attempt " + attempt + " ---");
          } else if (j && T.TERMINAL.has(j.state)) {
            logInfo.textContent += " (complete)";
            return;
          } else {
            /* the attempt ended, the next is not leased yet */
            await new Promise((r) => setTimeout(r, 1000));
          }
        } else if (!got) {
          /* no attempt yet: the reply came at once; wait for a lease */
          await new Promise((r) => setTimeout(r, 1000));
        }
      }
    }

    load();
    follow();
    T.metricsFollow(id, metricsEl, abort.signal, () => stopped);
    return {el, stop() {
      stopped = true;
      clearTimeout(timer);
      abort.abort();
    }};
  };
})();
