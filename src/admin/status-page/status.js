// The live status page: a snapshot from /api/status, then server-sent events from /api/events.
// Plain JavaScript, no build step; every list it keeps is bounded like the server's.
"use strict";

const MAX_ROWS = 200;
let snapshot = null;
let selected = null;
let refreshTimer = null;
let traceTimer = null;
/** Live query events shown so far: a snapshot fetched before the latest of them must not hide it. */
let liveQueries = 0;

const $ = (selector) => document.querySelector(selector);

function element(tag, attributes = {}, text) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  if (text !== undefined) node.textContent = text;
  return node;
}

function ms(value) {
  if (value < 1000) return `${Math.round(value)} ms`;
  if (value < 120_000) return `${(value / 1000).toFixed(1)} s`;
  if (value < 7_200_000) return `${Math.round(value / 60_000)} min`;
  return `${(value / 3_600_000).toFixed(1)} h`;
}

function outcomeCell(outcome, failed) {
  return element("td", { class: failed ? "failed" : `outcome-${outcome}` }, outcome ?? "–");
}

async function refresh() {
  const shown = liveQueries;
  const response = await fetch("/api/status", { cache: "no-store" });
  if (!response.ok) return;
  snapshot = await response.json();
  renderServer();
  renderSessions();
  renderCache();
  // A query event that came while the snapshot was on its way is on the page and maybe not in the
  // snapshot: keep the live rows, and ask again for a snapshot that has it.
  if (liveQueries === shown) renderQueries();
  else refreshSoon();
  renderProblems();
}

function refreshSoon() {
  clearTimeout(refreshTimer);
  refreshTimer = setTimeout(refresh, 250);
}

function renderServer() {
  $("#server").textContent =
    `v${snapshot.version} · control tcp ${snapshot.controlPort} · data udp ${snapshot.dataPort} · ` +
    `up ${ms(Date.now() - Date.parse(snapshot.startedAt))}`;
}

function renderSessions() {
  const body = $("#sessions tbody");
  body.replaceChildren();
  $("#session-count").textContent = `(${snapshot.sessions.length} open)`;
  for (const session of snapshot.sessions) {
    const row = element("tr", { "data-session": String(session.id) });
    if (session.id === selected) row.classList.add("selected");
    row.append(
      element("td", {}, String(session.id)),
      element("td", {}, `${session.address} :${session.port}`),
      element("td", {}, ms(session.ageMs)),
      element("td", {}, String(session.queries)),
      element("td", {}, String(session.errors)),
      outcomeCell(
        session.lastOutcome,
        session.lastOutcome !== null && !/^(HIT|MISS|REVALIDATED|STALE)$/.test(session.lastOutcome),
      ),
    );
    row.addEventListener("click", () => select(session.id));
    body.append(row);
  }
}

function renderCache() {
  const { cache } = snapshot;
  const figures = $("#cache-figures");
  figures.replaceChildren();
  const ratio = cache.hitRatio === null ? "–" : `${(cache.hitRatio * 100).toFixed(1)} %`;
  const counts =
    Object.entries(cache.outcomes)
      .map(([name, n]) => `${name} ${n}`)
      .join(" · ") || "no queries yet";
  for (const [term, value] of [
    ["store", cache.kind],
    ["entries", cache.entries === null ? "unknown" : String(cache.entries)],
    ["bytes", cache.bytes === null ? "unknown" : String(cache.bytes)],
    ["hit ratio", ratio],
    ["answers", counts],
  ]) {
    figures.append(element("dt", {}, term), element("dd", { "data-figure": term }, value));
  }
  const body = $("#cache tbody");
  body.replaceChildren();
  const now = Date.now();
  for (const entry of cache.recent) {
    const freshFor = Date.parse(entry.freshUntil) - now;
    const row = element("tr");
    const purge = element("button", { class: "purge", title: `DELETE /cache?url=${entry.key}` }, "purge");
    purge.addEventListener("click", async () => {
      await fetch(`/cache?url=${encodeURIComponent(entry.key)}`, { method: "DELETE" });
      refresh();
    });
    const action = element("td");
    action.append(purge);
    row.append(
      element("td", { class: "url", title: entry.key }, entry.key),
      element("td", {}, String(entry.status)),
      element("td", {}, String(entry.bytes)),
      element("td", {}, ms(now - Date.parse(entry.storedAt))),
      element(
        "td",
        { class: freshFor > 0 ? "outcome-HIT" : "outcome-STALE" },
        freshFor > 0 ? `fresh ${ms(freshFor)}` : `stale ${ms(-freshFor)}`,
      ),
      action,
    );
    body.append(row);
  }
}

function queryRow(query) {
  const row = element("tr");
  row.append(
    element("td", {}, new Date(query.atMs).toLocaleTimeString()),
    element("td", {}, String(query.sessionId)),
    element("td", { class: "url", title: query.url }, query.url),
    outcomeCell(query.outcome, query.failed),
    element("td", {}, query.status === null ? "–" : String(query.status)),
    element("td", {}, query.bytes === null ? "–" : String(query.bytes)),
    element("td", {}, query.delivery),
    element("td", {}, query.ms.toFixed(2)),
  );
  return row;
}

function renderQueries() {
  const body = $("#queries tbody");
  body.replaceChildren(...snapshot.queries.slice(0, MAX_ROWS).map(queryRow));
}

function problemItem(problem) {
  const where = problem.client
    ? ` ${problem.client}${problem.session === null ? "" : ` session ${problem.session}`}`
    : "";
  return element(
    "li",
    { class: problem.kind },
    `${new Date(problem.atMs).toLocaleTimeString()}${where}: ${problem.text}`,
  );
}

function renderProblems() {
  $("#problems").replaceChildren(...snapshot.problems.slice(0, MAX_ROWS).map(problemItem));
}

function select(id) {
  selected = id;
  for (const row of document.querySelectorAll("#sessions tbody tr")) {
    row.classList.toggle("selected", row.dataset.session === String(id));
  }
  loadTrace();
}

async function loadTrace() {
  if (selected === null) return;
  const response = await fetch(`/api/sessions/${selected}/trace`, { cache: "no-store" });
  if (!response.ok) return;
  const { trace } = await response.json();
  drawDiagram(selected, trace);
}

// A message-sequence diagram as the seed's captures show a session: four lifelines (the client's
// TCP port, the server's control port, the server's data port, the client's UDP ports), one
// arrow per control line, per REQUEST datagram and per burst of CHUNKs sent for it.
function drawDiagram(sessionId, trace) {
  $("#diagram-section").hidden = false;
  $("#diagram-session").textContent = String(sessionId);
  const session = snapshot?.sessions.find((s) => s.id === sessionId);
  const udpPorts = [...new Set(trace.filter((t) => t.type === "udp").map((t) => t.port))];
  const columns = [
    `client tcp :${session ? session.port : "?"}`,
    `server tcp :${snapshot ? snapshot.controlPort : "?"}`,
    `server udp :${snapshot ? snapshot.dataPort : "?"}`,
    `client udp ${udpPorts.length ? udpPorts.map((p) => `:${p}`).join(" ") : "–"}`,
  ];
  const x = [150, 470, 790, 1110];
  const rows = [];
  for (const item of trace) {
    if (item.type === "line") {
      rows.push({
        atMs: item.atMs,
        from: item.direction === "in" ? 0 : 1,
        to: item.direction === "in" ? 1 : 0,
        kind: "tcp",
        label: `${item.text} (${item.bytes} B)`,
      });
    } else {
      rows.push({
        atMs: item.atMs,
        from: 3,
        to: 2,
        kind: "udp",
        label: `REQUEST #${item.requestNumber} from :${item.port} (${item.requestBytes} B)`,
      });
      if (item.chunks.length > 0) {
        const first = item.chunks[0];
        const last = item.chunks[item.chunks.length - 1];
        const sizes = [...new Set(item.chunkBytes)].join("/");
        const which = item.chunks.length === 1 ? `CHUNK ${first}` : `CHUNK ${first}…${last} ×${item.chunks.length}`;
        rows.push({ atMs: item.atMs, from: 2, to: 3, kind: "udp", label: `${which} to :${item.port} (${sizes} B)` });
      }
      if (item.dropped) rows.push({ atMs: item.atMs, from: 2, to: 2, kind: "udp", label: `dropped: ${item.dropped}` });
    }
  }
  const rowHeight = 24;
  const height = 50 + rows.length * rowHeight + 20;
  const svgNS = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(svgNS, "svg");
  svg.setAttribute("width", "1260");
  svg.setAttribute("height", String(height));
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", `message sequence of session ${sessionId}`);
  const add = (tag, attributes, text) => {
    const node = document.createElementNS(svgNS, tag);
    for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, String(value));
    if (text !== undefined) node.textContent = text;
    svg.append(node);
    return node;
  };
  const defs = document.createElementNS(svgNS, "defs");
  for (const kind of ["tcp", "udp"]) {
    const marker = document.createElementNS(svgNS, "marker");
    for (const [name, value] of Object.entries({
      id: `arrow-${kind}`,
      viewBox: "0 0 10 10",
      refX: 10,
      refY: 5,
      markerWidth: 7,
      markerHeight: 7,
      orient: "auto",
    })) {
      marker.setAttribute(name, String(value));
    }
    const path = document.createElementNS(svgNS, "path");
    path.setAttribute("d", "M 0 0 L 10 5 L 0 10 z");
    path.setAttribute("fill", kind === "tcp" ? "#1d5fa8" : "#a86a00");
    marker.append(path);
    defs.append(marker);
  }
  svg.append(defs);
  columns.forEach((name, i) => {
    add("text", { x: x[i], y: 18, "text-anchor": "middle", class: "head" }, name);
    add("line", { x1: x[i], y1: 28, x2: x[i], y2: height - 10, class: "lifeline" });
  });
  const start = rows.length ? rows[0].atMs : 0;
  rows.forEach((row, i) => {
    const y = 50 + i * rowHeight;
    add("text", { x: 4, y: y + 4, class: "time" }, `+${row.atMs - start} ms`);
    if (row.from === row.to) {
      add("text", { x: x[row.from] + 8, y: y + 4, class: row.kind }, row.label);
      return;
    }
    add("line", {
      x1: x[row.from],
      y1: y,
      x2: x[row.to],
      y2: y,
      class: row.kind,
      "stroke-width": 1.5,
      "marker-end": `url(#arrow-${row.kind})`,
    });
    const mid = (x[row.from] + x[row.to]) / 2;
    add(
      "text",
      { x: mid, y: y - 5, "text-anchor": "middle", class: row.kind },
      row.label.length > 52 ? `${row.label.slice(0, 51)}…` : row.label,
    );
  });
  if (rows.length === 0)
    add("text", { x: 20, y: 60, class: "time" }, "nothing recorded yet: the trace is kept while this page is open");
  $("#diagram").replaceChildren(svg);
}

function connect() {
  const events = new EventSource("/api/events");
  const live = $("#live");
  events.addEventListener("open", () => {
    live.textContent = "live";
    live.className = "badge on";
    refresh();
  });
  events.addEventListener("error", () => {
    live.textContent = "reconnecting";
    live.className = "badge off";
  });
  events.addEventListener("query", (message) => {
    const query = JSON.parse(message.data);
    const body = $("#queries tbody");
    body.prepend(queryRow(query));
    liveQueries++;
    while (body.children.length > MAX_ROWS) body.lastElementChild.remove();
    refreshSoon();
  });
  events.addEventListener("problem", (message) => {
    const list = $("#problems");
    list.prepend(problemItem(JSON.parse(message.data)));
    while (list.children.length > MAX_ROWS) list.lastElementChild.remove();
  });
  events.addEventListener("session", refreshSoon);
  events.addEventListener("trace", (message) => {
    if (JSON.parse(message.data).session !== selected) return;
    clearTimeout(traceTimer);
    traceTimer = setTimeout(loadTrace, 150);
  });
}

refresh();
connect();
// Ages and freshness move on their own.
setInterval(refresh, 5000);
