// One session as a conversation. Every piece of entry content reaches the
// page through textContent (never innerHTML): transcripts are hostile input.
"use strict";
(() => {
  const root = document.getElementById("session");
  if (!root) return;
  const entriesUrl = root.dataset.entries;
  const liveUrl = root.dataset.live;
  const pageSize = Number(root.dataset.pageSize) || 200;
  const list = document.getElementById("entries");
  const countEl = document.getElementById("count");
  const shownEl = document.getElementById("shown");
  const liveEl = document.getElementById("live-state");
  const earlier = document.getElementById("load-earlier");
  const more = document.getElementById("load-more");
  const form = document.getElementById("filters");
  const FOLD_CHARS = 3000;
  const FOLD_LINES = 40;
  const LEVELS = ["debug", "info", "warning", "error", "critical"];
  const ALIASES = { trace: "debug", warn: "warning", fatal: "critical", notice: "info" };

  const state = { lo: 0, hi: 0, matched: 0, seen: 0, total: Number(root.dataset.total) || 0, filter: {} };
  let source = null;

  // --- small DOM helpers ----------------------------------------------------
  function el(tag, cls, text) {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }
  function folded(text, cls) {
    const value = typeof text === "string" ? text : JSON.stringify(text, null, 2);
    const box = el("div", "fold " + (cls || ""));
    const body = el("pre", "content");
    const lines = value.split("\n");
    let head = null;
    if (value.length > FOLD_CHARS) head = value.slice(0, FOLD_CHARS);
    if (lines.length > FOLD_LINES) {
      const byLines = lines.slice(0, FOLD_LINES).join("\n");
      head = head === null || byLines.length < head.length ? byLines : head;
    }
    body.textContent = head === null ? value : head;
    box.appendChild(body);
    if (head !== null) {
      const button = el("button", "unfold", `Show all (${value.length.toLocaleString()} characters)`);
      button.type = "button";
      button.addEventListener("click", () => {
        body.classList.add("long");
        body.textContent = value;
        button.remove();
      });
      box.appendChild(button);
    }
    return box;
  }
  function safeClass(value) {
    return String(value).toLowerCase().replace(/[^a-z0-9_-]/g, "_").slice(0, 40);
  }
  function levelOf(entry) {
    let raw = typeof entry.level === "string" ? entry.level : null;
    if (raw === null && entry.severity && typeof entry.severity.text === "string") raw = entry.severity.text;
    if (raw === null) return null;
    let name = raw.trim().toLowerCase().replace(/[0-9]+$/, "");
    name = ALIASES[name] || name;
    return LEVELS.includes(name) ? name : null;
  }
  function kindOf(entry) {
    const type = String(entry.type === undefined ? "?" : entry.type);
    return typeof entry.subtype === "string" ? `${type}/${entry.subtype}` : type;
  }
  function badge(text, cls) {
    return el("span", "badge " + (cls || ""), text);
  }
  function ids(entry) {
    const parts = [];
    for (const key of ["trace_id", "span_id", "parent_span_id"]) {
      if (typeof entry[key] === "string") parts.push(`${key} ${entry[key]}`);
    }
    return parts.length ? el("div", "ids", parts.join(" · ")) : null;
  }
  function raw(label, value) {
    const details = el("details", "raw");
    details.appendChild(el("summary", null, label));
    details.addEventListener("toggle", () => {
      if (details.open && details.childElementCount === 1) details.appendChild(folded(value));
    }, { once: false });
    return details;
  }

  // --- entry bodies ------------------------------------------------------------
  function block(b) {
    if (b === null || typeof b !== "object") return folded(String(b), "text");
    switch (b.type) {
      case "text":
        return folded(typeof b.text === "string" ? b.text : b.text, "text");
      case "tool_use": {
        const box = el("div", "tool-use");
        const head = el("div", "block-head");
        head.appendChild(badge("tool_use", "tool"));
        head.appendChild(el("strong", "tool-name", b.name === undefined ? "?" : b.name));
        box.appendChild(head);
        box.appendChild(folded(b.input === undefined ? {} : b.input, "tool-input"));
        return box;
      }
      case "tool_result": {
        const box = el("div", "tool-result" + (b.is_error ? " is-error" : ""));
        const head = el("div", "block-head");
        head.appendChild(badge(b.is_error ? "tool_result (error)" : "tool_result", "tool"));
        box.appendChild(head);
        if (Array.isArray(b.content)) b.content.forEach((inner) => box.appendChild(block(inner)));
        else if (b.content !== undefined && b.content !== null) box.appendChild(folded(b.content, "text"));
        return box;
      }
      case "thinking":
      case "redacted_thinking": {
        const details = el("details", "thinking");
        details.appendChild(el("summary", null, b.type === "thinking" ? "thinking" : "redacted thinking"));
        details.appendChild(folded(typeof b.thinking === "string" ? b.thinking : (b.data || ""), "text"));
        return details;
      }
      case "image":
        return el("div", "placeholder", "[image]");
      default:
        return folded(b, "json");
    }
  }
  function message(entry, body) {
    const msg = entry.message;
    const content = msg && typeof msg === "object" ? msg.content : msg;
    if (typeof content === "string") body.appendChild(folded(content, "text"));
    else if (Array.isArray(content)) content.forEach((b) => body.appendChild(block(b)));
    else if (content !== undefined) body.appendChild(folded(content, "json"));
  }
  function logEntry(entry, body) {
    const head = el("div", "log-head");
    const level = levelOf(entry);
    if (level) head.appendChild(badge(level, "lvl lvl-" + level));
    if (typeof entry.logger === "string") head.appendChild(el("span", "logger", entry.logger));
    body.appendChild(head);
    if (entry.content !== undefined) body.appendChild(folded(entry.content, "text"));
    if (typeof entry.exception === "string") body.appendChild(folded(entry.exception, "traceback"));
    if (typeof entry.stack === "string") body.appendChild(folded(entry.stack, "traceback"));
    const src = entry.source;
    if (src && typeof src === "object" && typeof src.pathname === "string") {
      const where = typeof src.funcName === "string" ? ` in ${src.funcName}` : "";
      body.appendChild(el("div", "source", `${src.pathname}:${src.lineno}${where}`));
    }
  }
  function otelLog(entry, body) {
    const head = el("div", "log-head");
    const level = levelOf(entry);
    const text = entry.severity && entry.severity.text;
    head.appendChild(badge(text || level || "log", "lvl lvl-" + (level || "none")));
    if (entry.scope && typeof entry.scope.name === "string") head.appendChild(el("span", "logger", entry.scope.name));
    body.appendChild(head);
    body.appendChild(folded(entry.body === undefined ? "" : entry.body, "text"));
  }
  function otelSpan(entry, body) {
    const head = el("div", "log-head");
    head.appendChild(badge("span", "span"));
    head.appendChild(el("strong", "span-name", entry.name === undefined ? "?" : entry.name));
    if (typeof entry.duration_ms === "number") head.appendChild(el("span", "duration", `${entry.duration_ms.toFixed(1)} ms`));
    const status = entry.status && entry.status.code;
    if (status) head.appendChild(badge(status, "status status-" + safeClass(status)));
    body.appendChild(head);
  }
  function marker(entry, body, cls, title) {
    const bar = el("div", "marker " + cls);
    bar.appendChild(el("strong", null, title));
    if (entry.content !== undefined) bar.appendChild(el("span", null, " " + (typeof entry.content === "string" ? entry.content : JSON.stringify(entry.content))));
    body.appendChild(bar);
  }

  function render(item) {
    const entry = item.entry && typeof item.entry === "object" ? item.entry : { type: "unreadable" };
    const kind = kindOf(entry);
    const art = el("article", "entry kind-" + safeClass(entry.type === undefined ? "unknown" : entry.type));
    art.dataset.index = String(item.i);
    if (typeof entry.uuid === "string") art.dataset.uuid = entry.uuid;
    if (entry.isSidechain === true) art.classList.add("sidechain");
    if (item.chain_broken) art.classList.add("chain-broken");
    const head = el("header", "entry-head");
    head.appendChild(el("span", "index", `#${item.i + 1}`));
    const ts = typeof entry.timestamp === "string" ? entry.timestamp.slice(0, 19).replace("T", " ") : "";
    head.appendChild(el("time", "ts", ts));
    const role = entry.message && typeof entry.message === "object" && typeof entry.message.role === "string" ? entry.message.role : null;
    head.appendChild(el("span", "kind", role && role !== entry.type ? `${kind} (${role})` : kind));
    if (entry.isSidechain === true) head.appendChild(badge("sidechain", "sidechain-badge"));
    if (item.chain_broken) head.appendChild(badge("parentUuid does not name the entry before", "chain-badge"));
    if (typeof entry.uuid === "string") {
      const link = el("a", "permalink", "link");
      link.href = "#entry=" + encodeURIComponent(entry.uuid);
      link.title = "Permanent link to this entry";
      head.appendChild(link);
    }
    art.appendChild(head);
    const body = el("div", "entry-body");
    if (kind === "system/gap") marker(entry, body, "gap", "Gap");
    else if (kind === "system/compact_boundary") marker(entry, body, "compact", "Compacted");
    else if (kind === "system/log") logEntry(entry, body);
    else if (entry.type === "otel_log") otelLog(entry, body);
    else if (entry.type === "otel_span") otelSpan(entry, body);
    else if (entry.message !== undefined) message(entry, body);
    else if (entry.type === "system") logEntry(entry, body);
    else if (typeof entry.summary === "string") body.appendChild(folded(entry.summary, "text summary"));
    else if (typeof entry.messageId === "string") body.appendChild(el("div", "placeholder", `snapshot of message ${entry.messageId}`));
    else if (entry.content !== undefined) body.appendChild(folded(entry.content, "text"));
    const idLine = ids(entry);
    if (idLine) body.appendChild(idLine);
    body.appendChild(raw("JSON", entry));
    art.appendChild(body);
    return art;
  }

  // --- loading -----------------------------------------------------------------
  function filterActive() {
    return Boolean(state.filter.type || state.filter.level || state.filter.q);
  }
  function query(extra) {
    const params = new URLSearchParams();
    for (const [key, value] of Object.entries(state.filter)) if (value) params.set(key, value);
    for (const [key, value] of Object.entries(extra)) params.set(key, String(value));
    return params;
  }
  async function fetchSlice(extra) {
    const response = await fetch(`${entriesUrl}?${query({ limit: pageSize, ...extra })}`, { credentials: "same-origin" });
    if (response.status === 401) {
      window.location.assign(`${document.querySelector(".brand").getAttribute("href").replace(/\/sessions$/, "")}/signin`);
      throw new Error("signed out");
    }
    if (!response.ok) throw new Error(`entries: HTTP ${response.status}`);
    return response.json();
  }
  function updateMeta() {
    countEl.textContent = String(state.total);
    const range = state.hi > state.lo ? `${state.lo + 1} to ${state.hi}` : "none";
    shownEl.textContent = filterActive()
      ? `Showing ${range} of ${state.matched} matching entries (${state.total} in all)`
      : `Showing ${range} of ${state.total} entries`;
    earlier.hidden = state.lo === 0;
    more.hidden = state.hi >= state.matched;
  }
  function accept(slice) {
    state.total = Math.max(state.total, slice.total);
    state.seen = Math.max(state.seen, slice.total);
    state.matched = slice.matched;
  }
  async function reload(extra) {
    const slice = await fetchSlice(extra);
    accept(slice);
    list.replaceChildren(...slice.items.map(render));
    state.lo = slice.offset;
    state.hi = slice.offset + slice.items.length;
    updateMeta();
    return slice;
  }
  async function loadMore() {
    const slice = await fetchSlice({ offset: state.hi });
    accept(slice);
    slice.items.forEach((item) => list.appendChild(render(item)));
    state.hi = slice.offset + slice.items.length;
    updateMeta();
  }
  async function loadEarlier() {
    const offset = Math.max(0, state.lo - pageSize);
    const slice = await fetchSlice({ offset, limit: state.lo - offset });
    accept(slice);
    list.prepend(...slice.items.map(render));
    state.lo = slice.offset;
    updateMeta();
  }
  function target() {
    const match = /^#entry=(.+)$/.exec(window.location.hash);
    return match ? decodeURIComponent(match[1]) : null;
  }
  function highlight(uuid) {
    for (const node of list.querySelectorAll("article.target")) node.classList.remove("target");
    const found = Array.from(list.children).find((node) => node.dataset.uuid === uuid);
    if (found) {
      found.classList.add("target");
      found.scrollIntoView({ block: "center" });
    }
    return found;
  }
  async function openTarget(uuid) {
    let found = highlight(uuid);
    if (!found) {
      setFilter({});
      await reload({ around: uuid, offset: 0 });
      found = highlight(uuid);
    }
    if (!found) shownEl.textContent = "That entry is not in this session.";
  }

  // --- filters -------------------------------------------------------------------
  function setFilter(filter) {
    state.filter = filter;
    form.elements.type.value = filter.type || "";
    form.elements.level.value = filter.level || "";
    form.elements.q.value = filter.q || "";
    const params = query({});
    const search = params.toString();
    history.replaceState(null, "", window.location.pathname + (search ? `?${search}` : "") + window.location.hash);
  }
  function matches(entry) {
    const f = state.filter;
    if (f.type && entry.type !== f.type && kindOf(entry) !== f.type) return false;
    if (f.level) {
      const level = levelOf(entry);
      if (!level || LEVELS.indexOf(level) < LEVELS.indexOf(f.level)) return false;
    }
    if (f.q) {
      const needle = f.q.toLowerCase();
      const stack = [entry];
      let hit = false;
      while (stack.length && !hit) {
        const value = stack.pop();
        if (typeof value === "string") hit = value.toLowerCase().includes(needle);
        else if (value && typeof value === "object") stack.push(...Object.values(value));
      }
      if (!hit) return false;
    }
    return true;
  }
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    setFilter({ type: form.elements.type.value, level: form.elements.level.value, q: form.elements.q.value });
    reload({ offset: 0 }).catch(report);
  });
  form.addEventListener("reset", (event) => {
    event.preventDefault();
    setFilter({});
    reload({ offset: 0 }).catch(report);
  });
  more.addEventListener("click", () => loadMore().catch(report));
  earlier.addEventListener("click", () => loadEarlier().catch(report));
  window.addEventListener("hashchange", () => {
    const uuid = target();
    if (uuid) openTarget(uuid).catch(report);
  });
  function report(error) {
    shownEl.textContent = `Could not load entries: ${error.message}`;
  }

  // --- live ----------------------------------------------------------------------
  function live(from) {
    source = new EventSource(`${liveUrl}?from=${from}`);
    source.addEventListener("open", () => {
      liveEl.textContent = "live";
      liveEl.className = "live-on";
    });
    source.addEventListener("error", () => {
      liveEl.textContent = "reconnecting";
      liveEl.className = "live-off";
    });
    source.addEventListener("gone", () => {
      liveEl.textContent = "session deleted";
      source.close();
    });
    source.addEventListener("entry", (event) => {
      const item = JSON.parse(event.data);
      if (item.i < state.seen) return; // already counted (a reconnect, or the first read saw it)
      state.seen = item.i + 1;
      state.total = Math.max(state.total, item.total, state.seen);
      if (!filterActive() || matches(item.entry)) {
        const caughtUp = state.hi >= state.matched;
        state.matched += 1;
        if (caughtUp) {
          list.appendChild(render(item));
          state.hi += 1;
        }
      }
      updateMeta();
    });
  }

  const params = new URLSearchParams(window.location.search);
  setFilter({ type: params.get("type") || "", level: params.get("level") || "", q: params.get("q") || "" });
  const first = target();
  const start = first ? (setFilter({}), reload({ around: first, offset: 0 })) : reload({ offset: 0 });
  start
    .then((slice) => {
      if (first) openTarget(first);
      live(slice.total);
    })
    .catch(report);
})();
