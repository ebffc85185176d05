/* app.js: the Tether web page: a small router and the agents and jobs
 * pages.  The job page is in job.js, the log viewer in logview.js.
 *
 * Every call goes to /api/v1/ with the session cookie (HttpOnly, set by
 * the login); state-changing calls add the Tether-CSRF header.  Data from
 * the workspace is only ever put in the page as text (textContent, via
 * h() below), never as markup. */
"use strict";

const T = (window.Tether = {});

/* h("td", {class: "num"}, "text", childNode, ...): an element whose string
 * children become text nodes.  Attributes are set as attributes. */
T.h = function h(tag, attrs, ...kids) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {}))
    if (v !== null && v !== undefined && v !== false)
      el.setAttribute(k, v === true ? "" : String(v));
  for (const k of kids.flat(Infinity))
    if (k !== null && k !== undefined)
      el.appendChild(k instanceof Node ? k : document.createTextNode(String(k)));
  return el;
};
const h = T.h;

T.ApiError = class extends Error {
  constructor(status, msg) {
    super(msg);
    this.status = status;
  }
};

/* One API call; JSON replies are parsed, a 401 goes back to the login. */
T.api = async function api(method, path, opts) {
  opts = opts || {};
  const headers = {"Tether-Protocol": "1"};
  if (method !== "GET")
    headers["Tether-CSRF"] = "1";
  const resp = await fetch("/api/v1/" + path, {
    method, headers, credentials: "same-origin", signal: opts.signal,
    cache: "no-store",
  });
  if (resp.status === 401) {
    location.replace("/login");
    throw new T.ApiError(401, "not logged in");
  }
  if (opts.raw)
    return resp;
  const body = await resp.json().catch(() => null);
  if (!resp.ok) {
    const msg = body && body.error ? body.error.message : "HTTP " + resp.status;
    throw new T.ApiError(resp.status, msg);
  }
  return body;
};

T.q = function q(params) {
  const u = new URLSearchParams();
  for (const [k, v] of Object.entries(params))
    if (v !== null && v !== undefined && v !== "")
      u.set(k, v);
  const s = u.toString();
  return s ? "?" + s : "";
};

T.time = function time(t) {
  if (t === null || t === undefined)
    return "";
  return new Date(t * 1000).toISOString().replace("T", " ").slice(0, 19) + "Z";
};

T.ago = function ago(t) {
  if (t === null || t === undefined)
    return "never";
  const s = Math.max(0, Date.now() / 1000 - t);
  if (s < 90)
    return Math.round(s) + " s ago";
  if (s < 5400)
    return Math.round(s / 60) + " min ago";
  return Math.round(s / 3600) + " h ago";
};

T.bytes = function bytes(n) {
  if (n === null || n === undefined)
    return "";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return (i === 0 ? n : n.toFixed(1)) + " " + units[i];
};

T.secs = function secs(d) {
  if (d === null || d === undefined)
    return "";
  if (d < 60)
    return d.toFixed(d < 10 ? 2 : 1) + " s";
  if (d < 3600)
    return Math.floor(d / 60) + " min " + Math.round(d % 60) + " s";
  return Math.floor(d / 3600) + " h " + Math.round((d % 3600) / 60) + " min";
};

const STATE_CLASS = {
  online: "ok", succeeded: "ok", running: "info", assigned: "info",
  queued: "info", draining: "warn", cancelling: "warn", cancelled: "warn",
  offline: "warn",
};
T.TERMINAL = new Set(["succeeded", "failed", "cancelled", "timed_out", "oom",
  "lost", "preempted", "hung", "source_failed", "env_failed", "launch_failed",
  "outputs_failed", "disk_limit"]);
T.LIVE_STATES = ["queued", "assigned", "running", "cancelling"];

T.badge = function badge(state) {
  return h("span", {class: "state " + (STATE_CLASS[state] || "bad")}, state || "");
};

T.link = function link(path, text) {
  return h("a", {href: path}, text);
};

T.status = function status(text) {
  document.getElementById("status").textContent = text || "";
};

/* ---- router ------------------------------------------------------- */
const main = () => document.getElementById("main");
let current = null; /* {stop()} of the page shown */

T.go = function go(path, replace) {
  if (replace)
    history.replaceState(null, "", path);
  else
    history.pushState(null, "", path);
  route();
};

function route() {
  if (current && current.stop)
    current.stop();
  current = null;
  T.status("");
  const path = location.pathname;
  let m;
  let page;
  if ((m = /^\/jobs\/(\d+)$/.exec(path)))
    page = T.jobPage(Number(m[1]));
  else if (path === "/jobs")
    page = jobsPage();
  else if (path === "/agents")
    page = agentsPage();
  else if (path === "/compare")
    page = T.comparePage();
  else
    return T.go("/agents", true);
  current = page;
  for (const a of document.querySelectorAll(".top nav a"))
    a.toggleAttribute("aria-current", path.startsWith(a.getAttribute("href")));
  for (const a of document.querySelectorAll('.top nav a[aria-current=""]'))
    a.setAttribute("aria-current", "page");
  main().replaceChildren(page.el);
}

/* A page that reloads its data every `ms` while shown. */
function poller(el, load, ms) {
  let timer = null;
  let stopped = false;
  const tick = async () => {
    try {
      await load();
      T.status("");
    } catch (e) {
      if (e.status !== 401)
        T.status("Cannot load: " + e.message);
    }
    if (!stopped)
      timer = setTimeout(tick, ms);
  };
  tick();
  return {el, stop() { stopped = true; clearTimeout(timer); }};
}

/* ---- agents ------------------------------------------------------- */
function capacityText(cap, free) {
  if (!cap)
    return "";
  const gpus = Array.isArray(cap.gpus) ? cap.gpus.length : cap.gpus || 0;
  const parts = [cap.cpus + " CPU", T.bytes(cap.memory), gpus + " GPU"];
  const line1 = parts.join(", ");
  if (!free)
    return [line1, h("br"), h("span", {class: "muted"}, "free: not reported")];
  const fg = Array.isArray(free.gpus) ? free.gpus.length : free.gpus || 0;
  const f = [free.cpus + " CPU", T.bytes(free.memory), fg + " GPU"].join(", ");
  return [line1, h("br"), h("span", {class: "muted"}, "free: " + f)];
}

function agentRow(a, running) {
  const jobs = running.filter((j) => j.agent === a.name);
  return h("tr", {},
    h("td", {}, h("strong", {}, a.name), h("br"), h("span", {class: "muted"}, a.id)),
    h("td", {class: "labels"}, (a.labels || []).map((l) => h("span", {}, l))),
    h("td", {}, T.badge(a.state)),
    h("td", {}, capacityText(a.capacity, a.free)),
    h("td", {}, String(a.running ?? 0), jobs.length ? " " : "",
      jobs.map((j, i) => [i ? ", " : "", T.link("/jobs/" + j.id, "#" + j.id)])),
    h("td", {}, h("time", {datetime: T.time(a.last_seen), title: T.time(a.last_seen)},
      T.ago(a.last_seen))),
    h("td", {}, a.version || ""),
    h("td", {}, a.transport || ""));
}

function agentsPage() {
  const tbody = h("tbody");
  const el = h("section", {"aria-labelledby": "agents-h"},
    h("h1", {id: "agents-h"}, "Agents"),
    h("table", {id: "agents"},
      h("caption", {class: "muted"}, "Machines attached to this workspace"),
      h("thead", {}, h("tr", {}, ["Name", "Labels", "State", "Capacity",
        "Running jobs", "Last heartbeat", "Version", "Transport"]
        .map((t) => h("th", {scope: "col"}, t)))),
      tbody));
  return poller(el, async () => {
    const [ag, run] = await Promise.all([T.api("GET", "agents"),
      T.api("GET", "jobs" + T.q({state: "running", limit: 1000}))]);
    const rows = ag.agents.filter((a) => a.state !== "revoked")
      .map((a) => agentRow(a, run.jobs));
    tbody.replaceChildren(...(rows.length ? rows
      : [h("tr", {}, h("td", {colspan: 8}, "No agent is registered."))]));
  }, 3000);
}

/* ---- jobs --------------------------------------------------------- */
const detailCache = new Map(); /* id -> GET jobs/{id} of an ended job */

async function jobDetail(j) {
  if (detailCache.has(j.id))
    return detailCache.get(j.id);
  const d = await T.api("GET", "jobs/" + j.id);
  if (T.TERMINAL.has(d.state))
    detailCache.set(j.id, d);
  return d;
}

T.phaseText = function phaseText(dur) {
  if (!dur)
    return "";
  return ["queued", "source", "env", "run", "outputs"]
    .filter((p) => dur[p] !== null && dur[p] !== undefined)
    .map((p) => p + " " + T.secs(dur[p])).join(", ");
};

/* Jobs picked on the jobs page to compare their metrics (metrics.js). */
const picked = new Set();

function pickBox(id) {
  const box = h("input", {type: "checkbox", class: "pick", value: id,
    checked: picked.has(id), "aria-label": "compare job " + id});
  box.addEventListener("change", () => {
    if (box.checked)
      picked.add(id);
    else
      picked.delete(id);
  });
  return box;
}

function jobRow(j, d) {
  const att = d && d.attempts.length ? d.attempts[d.attempts.length - 1] : null;
  return h("tr", {},
    h("td", {}, pickBox(j.id)),
    h("td", {class: "num"}, T.link("/jobs/" + j.id, "#" + j.id)),
    h("td", {}, T.link("/jobs/" + j.id, j.name)),
    h("td", {}, T.badge(j.state)),
    h("td", {}, j.reason || (d && d.queue_reason) || ""),
    h("td", {}, j.agent || ""),
    h("td", {}, T.time(j.submitted_at)),
    h("td", {}, att ? T.phaseText(att.durations) : ""),
    h("td", {class: "num"}, att ? T.bytes(att.peak_memory_bytes) : ""));
}

function field(label, input) {
  return h("label", {}, label, input);
}

function jobsPage() {
  const params = new URLSearchParams(location.search);
  const state = h("select", {name: "state"},
    ["", ...T.LIVE_STATES, ...T.TERMINAL].map((s) =>
      h("option", {value: s, selected: s === (params.get("state") || "")},
        s || "any")));
  const agent = h("input", {name: "agent", type: "text", value: params.get("agent") || ""});
  const name = h("input", {name: "name", type: "text", value: params.get("name") || ""});
  const form = h("form", {class: "filters", role: "search"},
    field("State", state), field("Agent", agent), field("Name", name),
    h("button", {type: "submit"}, "Filter"));
  const tbody = h("tbody");
  const compare = h("button", {type: "button", id: "compare-picked"},
    "Compare metrics of the checked jobs");
  compare.addEventListener("click", () =>
    T.go("/compare" + T.q({jobs: [...picked].sort((a, b) => a - b).join(",")})));
  const el = h("section", {"aria-labelledby": "jobs-h"},
    h("h1", {id: "jobs-h"}, "Jobs"), form, compare,
    h("table", {id: "jobs"},
      h("thead", {}, h("tr", {}, ["", "Id", "Name", "State", "Reason", "Agent",
        "Submitted", "Durations", "Peak memory"]
        .map((t) => h("th", {scope: "col"}, t)))),
      tbody));
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    T.go("/jobs" + T.q({state: state.value, agent: agent.value.trim(),
      name: name.value.trim()}));
  });
  return poller(el, async () => {
    const list = await T.api("GET", "jobs" + T.q({state: params.get("state"),
      agent: params.get("agent"), name: params.get("name"), limit: 200}));
    const details = await Promise.all(list.jobs.map((j) =>
      jobDetail(j).catch(() => null)));
    const rows = list.jobs.map((j, i) => jobRow(j, details[i]));
    tbody.replaceChildren(...(rows.length ? rows
      : [h("tr", {}, h("td", {colspan: 9}, "No job matches."))]));
  }, 3000);
}

/* ---- start -------------------------------------------------------- */
document.addEventListener("DOMContentLoaded", async () => {
  document.addEventListener("click", (ev) => {
    const a = ev.target.closest && ev.target.closest("a[href^='/']");
    if (!a || a.hasAttribute("download") || ev.ctrlKey || ev.metaKey ||
        ev.shiftKey || ev.button !== 0)
      return;
    ev.preventDefault();
    T.go(a.getAttribute("href"));
  });
  window.addEventListener("popstate", route);
  document.getElementById("logout").addEventListener("click", async () => {
    await fetch("/web/logout", {method: "POST", credentials: "same-origin",
      headers: {"Tether-CSRF": "1"}});
    location.replace("/login");
  });
  try {
    const who = await fetch("/web/session", {credentials: "same-origin"});
    if (!who.ok)
      return location.replace("/login");
    T.role = (await who.json()).role;
    document.getElementById("role").textContent = "logged in as " + T.role;
  } catch (e) {
    T.status("Cannot reach the workspace: " + e.message);
  }
  route();
});
