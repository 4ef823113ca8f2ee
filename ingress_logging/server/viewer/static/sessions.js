// The sessions list keeps its counts live: it re-reads its page of the
// listing and rebuilds the rows with textContent (session ids are input too).
"use strict";
(() => {
  const root = document.getElementById("sessions");
  if (!root) return;
  const rows = document.getElementById("session-rows");
  const base = root.dataset.base;
  const every = Math.max(500, Number(root.dataset.refreshMs) || 2000);

  function cell(text, cls) {
    const td = document.createElement("td");
    if (cls) td.className = cls;
    td.textContent = text === null || text === undefined ? "" : String(text);
    return td;
  }
  function row(s) {
    const tr = document.createElement("tr");
    tr.dataset.sessionId = s.id;
    const first = document.createElement("td");
    const link = document.createElement("a");
    link.className = "session-link";
    link.href = `${base}/sessions/${encodeURIComponent(s.id)}`;
    link.textContent = s.id;
    first.appendChild(link);
    tr.append(first, cell(s.entries, "num entries"), cell(s.first_activity, "time first"), cell(s.last_activity, "time last"));
    return tr;
  }
  async function refresh() {
    if (document.hidden) return;
    const params = new URLSearchParams({ prefix: root.dataset.prefix, limit: root.dataset.limit });
    if (root.dataset.cursor) params.set("cursor", root.dataset.cursor);
    const response = await fetch(`${root.dataset.api}?${params}`, { credentials: "same-origin" });
    if (response.status === 401) {
      window.location.assign(`${base}/signin`);
      return;
    }
    if (!response.ok) return;
    const page = await response.json();
    if (page.sessions.length === 0) return;
    rows.replaceChildren(...page.sessions.map(row));
  }
  window.setInterval(() => refresh().catch(() => {}), every);
})();
