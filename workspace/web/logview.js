/* logview.js: a log viewer that holds megabytes of lines and keeps only the
 * lines on screen in the DOM (virtualised rendering).
 *
 *   const v = new LogView(containerElement);
 *   v.append(uint8Array);   // bytes as they arrive (UTF-8, split anywhere)
 *   v.mark("attempt 2");    // a separator line
 *   v.reset();
 *
 * Lines are kept as strings; a frame renders the ~60 lines in view plus a
 * margin.  Every line is set with textContent, so log bytes are text and
 * never markup.  Terminal escapes (docker build and pull colour their
 * output) are rendered, never shown raw: SGR colours and bold become styled
 * spans (ansiSpans below), every other escape sequence is dropped.  The log
 * bytes themselves are untouched (the API and the CLI give them as sent).  "Follow" keeps the view at the end while lines arrive and
 * turns off when the reader scrolls up (and on again at the bottom). */
"use strict";

class LogView {
  constructor(el) {
    this.el = el;
    this.lineHeight = 18;
    /* browsers cap element heights near 33M px: scale above this */
    this.maxPx = 8000000;
    this.overscan = 20;
    /* past this many lines the oldest tenth is let go (memory bound) */
    this.maxLines = 2000000;
    this.el.classList.add("log");
    this.el.tabIndex = 0;
    this.el.setAttribute("role", "log");
    this.spacer = document.createElement("div");
    this.spacer.className = "spacer";
    this.win = document.createElement("div");
    this.win.className = "win";
    this.spacer.appendChild(this.win);
    this.el.appendChild(this.spacer);
    this.follow = true;
    this.onfollow = null;
    this.pending = false;
    this.el.addEventListener("scroll", () => this.onScroll());
    window.addEventListener("resize", () => this.schedule());
    this.reset();
  }

  reset() {
    this.lines = [];
    this.kinds = new Map(); /* line index -> "sep" */
    this.tail = "";
    this.decoder = new TextDecoder("utf-8");
    this.bytes = 0;
    this.dropped = 0;
    this.schedule();
  }

  /* The number of lines, counting an unterminated last one. */
  count() {
    return this.lines.length + (this.tail.length > 0 ? 1 : 0);
  }

  line(i) {
    return i < this.lines.length ? this.lines[i] : this.tail;
  }

  append(bytes) {
    this.bytes += bytes.length;
    const text = this.tail + this.decoder.decode(bytes, {stream: true});
    const parts = text.split("\n");
    this.tail = parts.pop();
    for (let i = 0; i < parts.length; i++)
      this.lines.push(parts[i]);
    this.trim();
    this.schedule();
  }

  trim() {
    if (this.lines.length <= this.maxLines)
      return;
    const drop = Math.ceil(this.maxLines / 10);
    this.lines.splice(0, drop);
    this.dropped += drop;
    const kinds = new Map();
    for (const [i, k] of this.kinds)
      if (i >= drop)
        kinds.set(i - drop, k);
    this.kinds = kinds;
  }

  mark(text) {
    if (this.tail.length > 0) {
      this.lines.push(this.tail);
      this.tail = "";
    }
    this.kinds.set(this.lines.length, "sep");
    this.lines.push(text);
    this.schedule();
  }

  setFollow(on) {
    if (this.follow === on)
      return;
    this.follow = on;
    if (this.onfollow)
      this.onfollow(on);
    if (on)
      this.schedule();
  }

  /* Our own jump to the end also lands here, at the end: follow stays. */
  onScroll() {
    const el = this.el;
    this.setFollow(el.scrollTop + el.clientHeight >= el.scrollHeight - 4);
    this.schedule();
  }

  schedule() {
    if (this.pending)
      return;
    this.pending = true;
    requestAnimationFrame(() => {
      this.pending = false;
      this.render();
    });
  }

  /* The first line to show for the current scroll position. */
  firstLine(n, visible) {
    const el = this.el;
    const full = n * this.lineHeight;
    if (full <= this.maxPx)
      return Math.floor(el.scrollTop / this.lineHeight);
    const range = Math.max(1, el.scrollHeight - el.clientHeight);
    return Math.round((el.scrollTop / range) * Math.max(0, n - visible));
  }

  render() {
    const el = this.el;
    const n = this.count();
    const lh = this.lineHeight;
    const height = Math.min(n * lh, this.maxPx);
    this.spacer.style.height = height + "px";
    if (this.follow && el.scrollTop + el.clientHeight < height - 1)
      el.scrollTop = height;
    const visible = Math.ceil(el.clientHeight / lh) + 1;
    const first = Math.max(0, this.firstLine(n, visible) - this.overscan);
    const last = Math.min(n, first + visible + 2 * this.overscan);
    /* place the window so that line `first` sits at its scaled place */
    const top = n * lh <= this.maxPx
      ? first * lh
      : Math.max(0, el.scrollTop - (this.firstLine(n, visible) - first) * lh);
    this.win.style.transform = "translateY(" + top + "px)";
    const frag = document.createDocumentFragment();
    for (let i = first; i < last; i++) {
      const div = document.createElement("div");
      div.className = this.kinds.get(i) === "sep" ? "ln sep" : "ln";
      paintLine(div, this.line(i));
      frag.appendChild(div);
    }
    this.win.replaceChildren(frag);
  }

  /* The text of the lines now in the DOM (for tests and copy). */
  visibleText() {
    return Array.from(this.win.children, (d) => d.textContent).join("\n");
  }
}

/* The 16 terminal colours (normal, then bright), readable on the dark
 * log background. */
const ANSI_COLOURS = [
  "#6e7681", "#ff7b72", "#3fb950", "#d29922", "#58a6ff", "#bc8cff",
  "#39c5cf", "#b1bac4", "#8b949e", "#ffa198", "#56d364", "#e3b341",
  "#79c0ff", "#d2a8ff", "#56d4dd", "#ffffff"];

/* Colour n of the 256-colour palette, as CSS. */
function ansi256(n) {
  if (n < 16)
    return ANSI_COLOURS[n];
  if (n < 232) {
    const v = [0, 95, 135, 175, 215, 255];
    n -= 16;
    return "rgb(" + v[Math.floor(n / 36)] + "," + v[Math.floor(n / 6) % 6] +
      "," + v[n % 6] + ")";
  }
  const g = 8 + (n - 232) * 10;
  return "rgb(" + g + "," + g + "," + g + ")";
}

/* Apply one SGR parameter list ("1;31", "38;5;208", "") to style st. */
function applySgr(st, params) {
  const p = params === "" ? [0] : params.split(";").map((x) => +x || 0);
  for (let i = 0; i < p.length; i++) {
    const c = p[i];
    if (c === 0) {
      st.fg = st.bg = null;
      st.bold = st.dim = st.italic = st.under = false;
    } else if (c === 1) st.bold = true;
    else if (c === 2) st.dim = true;
    else if (c === 3) st.italic = true;
    else if (c === 4) st.under = true;
    else if (c === 22) st.bold = st.dim = false;
    else if (c === 23) st.italic = false;
    else if (c === 24) st.under = false;
    else if (c >= 30 && c <= 37) st.fg = ANSI_COLOURS[c - 30];
    else if (c >= 90 && c <= 97) st.fg = ANSI_COLOURS[c - 90 + 8];
    else if (c >= 40 && c <= 47) st.bg = ANSI_COLOURS[c - 40];
    else if (c >= 100 && c <= 107) st.bg = ANSI_COLOURS[c - 100 + 8];
    else if (c === 39) st.fg = null;
    else if (c === 49) st.bg = null;
    else if ((c === 38 || c === 48) && p[i + 1] === 5 && i + 2 < p.length) {
      const col = ansi256(Math.min(255, p[i + 2]));
      if (c === 38) st.fg = col; else st.bg = col;
      i += 2;
    } else if ((c === 38 || c === 48) && p[i + 1] === 2 && i + 4 < p.length) {
      const col = "rgb(" + Math.min(255, p[i + 2]) + "," +
        Math.min(255, p[i + 3]) + "," + Math.min(255, p[i + 4]) + ")";
      if (c === 38) st.fg = col; else st.bg = col;
      i += 4;
    }
  }
}

/* Escape sequences: CSI (ESC [ ... final byte), OSC (ESC ] ... BEL or
 * ESC \), other two-byte escapes, and a lone ESC. */
const ANSI_RE =
  /\x1b\[([0-9;?]*)([ -\/]*[@-~])|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[@-Z\\-_]?/g;

/* Split a line into [text, style] runs: SGR sets the style, every other
 * escape is dropped.  Exported for tests. */
function ansiSpans(line) {
  const out = [];
  const st = {fg: null, bg: null, bold: false, dim: false, italic: false,
              under: false};
  let last = 0;
  ANSI_RE.lastIndex = 0;
  for (let m; (m = ANSI_RE.exec(line)) !== null;) {
    if (m.index > last)
      out.push([line.slice(last, m.index), Object.assign({}, st)]);
    if (m[2] === "m")
      applySgr(st, m[1]);
    last = ANSI_RE.lastIndex;
  }
  if (last < line.length)
    out.push([line.slice(last), Object.assign({}, st)]);
  return out;
}

/* Set a line into div as text: plain, or styled spans for coloured text. */
function paintLine(div, line) {
  if (line.indexOf("\x1b") < 0) {
    div.textContent = line;
    return;
  }
  div.textContent = "";
  for (const [text, st] of ansiSpans(line)) {
    const plain = !st.fg && !st.bg && !st.bold && !st.dim && !st.italic &&
      !st.under;
    if (plain) {
      div.appendChild(document.createTextNode(text));
      continue;
    }
    const span = document.createElement("span");
    span.textContent = text;
    if (st.fg) span.style.color = st.fg;
    if (st.bg) span.style.backgroundColor = st.bg;
    if (st.bold) span.style.fontWeight = "bold";
    if (st.dim) span.style.opacity = "0.7";
    if (st.italic) span.style.fontStyle = "italic";
    if (st.under) span.style.textDecoration = "underline";
    div.appendChild(span);
  }
}

window.LogView = LogView;
window.ansiSpans = ansiSpans;
