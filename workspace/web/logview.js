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
 * never markup.  "Follow" keeps the view at the end while lines arrive and
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
      div.textContent = this.line(i);
      frag.appendChild(div);
    }
    this.win.replaceChildren(frag);
  }

  /* The text of the lines now in the DOM (for tests and copy). */
  visibleText() {
    return Array.from(this.win.children, (d) => d.textContent).join("\n");
  }
}

window.LogView = LogView;
