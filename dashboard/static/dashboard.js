// iter dashboard: the list of requests and sessions, one workflow's state, its live stream (SSE)
// and the buttons that steer it. Every value from the server is put into the page as text
// (textContent, createTextNode), never as markup: model output is attacker-controlled.
"use strict";

const LIST_POLL_MS = 2000;
const LIVE_MAX_CHARS = 200000; // the live panel keeps the tail; the full record is in Temporal
const POINTS_FALLBACK = {};

const ui = { kind: "", selected: null, source: null, meta: { points: POINTS_FALLBACK }, liveChars: 0, heldKey: "", steps: {}, tokens: null };

function el(tag, props, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = String(value);
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, String(value));
  }
  for (const child of children) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function safeHref(url) {
  // Only web links: a "javascript:" URL would run code when clicked.
  return typeof url === "string" && /^https?:\/\//i.test(url) ? url : null;
}

function setLink(node, url) {
  const href = safeHref(url);
  if (href) node.setAttribute("href", href);
  else node.removeAttribute("href");
}

function badge(node, text) {
  node.textContent = text || "";
  node.className = "badge " + String(text || "").replace(/[^a-z_]/g, "");
  node.hidden = !text;
}

async function getJSON(url) {
  const response = await fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" });
  if (!response.ok) throw new Error(`${response.status} ${await response.text()}`);
  return response.json();
}

// --- the list --------------------------------------------------------------------------------

async function refreshList() {
  let rows;
  try {
    rows = await getJSON("/api/workflows");
    document.getElementById("connection").textContent = "connected";
  } catch (error) {
    document.getElementById("connection").textContent = "disconnected";
    return;
  }
  const body = document.querySelector("#workflows tbody");
  const shown = rows.filter((row) => !ui.kind || row.kind === ui.kind);
  body.replaceChildren(
    ...shown.map((row) => {
      const tr = el(
        "tr",
        { "data-id": row.workflow_id, class: row.workflow_id === ui.selected ? "selected" : "", onclick: () => select(row.workflow_id) },
        el("td", { class: "item" }, row.item || row.workflow_id, el("small", {}, `${row.kind} · ${row.started.replace("T", " ")}`)),
        el("td", {}, row.project),
        el("td", {}, el("span", { class: `badge ${statusClass(row)}`, text: row.outcome && row.outcome !== "running" ? row.outcome : row.status })),
        el("td", {}, row.phase),
      );
      return tr;
    }),
  );
  document.getElementById("list-empty").hidden = shown.length > 0;
}

function statusClass(row) {
  const word = row.outcome && row.outcome !== "running" ? row.outcome : row.status;
  return String(word).replace(/[^a-z_]/g, "");
}

// --- one workflow ----------------------------------------------------------------------------

function select(workflowId) {
  if (location.hash !== `#${workflowId}`) history.replaceState(null, "", `#${workflowId}`);
  if (ui.selected === workflowId && ui.source) return;
  ui.selected = workflowId;
  for (const tr of document.querySelectorAll("#workflows tbody tr")) tr.classList.toggle("selected", tr.dataset.id === workflowId);
  if (ui.source) ui.source.close();
  document.getElementById("live").replaceChildren();
  ui.liveChars = 0;
  ui.heldKey = "";
  ui.steps = {};
  ui.tokens = null;
  document.getElementById("pick").hidden = true;
  document.getElementById("detail").hidden = false;
  document.getElementById("notice").textContent = "";
  document.getElementById("wf-id").textContent = workflowId;
  const source = new EventSource(`/api/workflows/${encodeURIComponent(workflowId)}/events`);
  ui.source = source;
  source.addEventListener("state", (event) => renderDetail(JSON.parse(event.data)));
  source.addEventListener("live", (event) => appendLive(JSON.parse(event.data)));
  source.addEventListener("problem", (event) => notice(JSON.parse(event.data).message, true));
  source.addEventListener("end", () => {
    source.close();
    if (ui.source === source) ui.source = null;
    refreshList();
  });
}

function renderDetail(detail) {
  const state = detail.state || {};
  document.body.classList.toggle("kind-request", detail.kind === "request");
  document.body.classList.toggle("kind-session", detail.kind === "session");
  badge(document.getElementById("wf-kind"), detail.kind);
  badge(document.getElementById("wf-status"), detail.status);
  badge(document.getElementById("wf-phase"), state.phase);
  const outcome = detail.kind === "session" ? state.status : state.outcome;
  badge(document.getElementById("wf-outcome"), outcome === "running" ? "" : outcome); // "running" is the status already
  document.getElementById("wf-paused").hidden = !state.paused;
  setLink(document.getElementById("wf-temporal"), detail.temporal_url);
  document.getElementById("wf-summary").textContent = state.summary || state.spec_path || "";
  const error = document.getElementById("wf-error");
  error.textContent = state.error || "";
  error.hidden = !state.error;
  const running = detail.status === "running";
  for (const button of document.querySelectorAll("#controls button")) {
    const action = button.dataset.action;
    button.disabled = !running || (action === "pause" && state.paused) || (action === "resume" && !state.paused);
  }
  document.getElementById("message-send").disabled = !running;
  renderHeld(detail, state);
  if (detail.kind === "session") renderSession(state);
  else renderRequest(detail, state);
  renderUsage(detail, state);
  renderEvents(state.events || []);
}

function heldSteps(state) {
  // A step the policy held waits for a person: approve lets it run, deny refuses it (with a reason).
  const holds = (state.holds && state.holds.held) || [];
  return holds.filter((item) => item.decision === "waiting");
}

function renderHeld(detail, state) {
  const held = heldSteps(state);
  document.getElementById("held-section").hidden = held.length === 0;
  const key = JSON.stringify(held.map((item) => [item.step_id, item.reasons]));
  if (key === ui.heldKey) return; // unchanged: keep what the person is typing
  ui.heldKey = key;
  document.getElementById("held").replaceChildren(
    ...held.map((item) => {
      const reason = el("input", { type: "text", maxlength: "2000", placeholder: "reason for a denial", "aria-label": `reason for denying ${item.step_id}` });
      return el(
        "li",
        { "data-held": item.step_id },
        el("span", { class: "mark held", text: "⏸" }),
        el("code", {}, item.step_id),
        el("span", {}, (item.reasons || []).join("; ")),
        el("button", { type: "button", class: "approve", onclick: () => act("approve", { step_id: item.step_id }) }, "Approve"),
        reason,
        el("button", { type: "button", class: "danger", onclick: () => act("deny", { step_id: item.step_id, reason: reason.value }) }, "Deny"),
      );
    }),
  );
}

function describeStep(step) {
  if (step.type === "file") return `${step.action} ${step.path}`;
  return step.command || "";
}

function renderRequest(detail, state) {
  const results = {};
  for (const result of state.results || []) results[result.step_id] = result; // the latest run of each step
  const held = new Set(heldSteps(state).map((item) => item.step_id));
  const node = (item) => {
    const step = item.step || {};
    const result = results[step.id];
    let status = ui.steps[step.id] || "waiting"; // from the stream while the steps run
    if (held.has(step.id)) status = "held";
    else if (result && result.skipped) status = "skipped";
    else if (result) status = result.ok ? "ok" : "failed";
    const mark = markFor(status);
    const facts = result && !result.skipped ? `exit ${result.exit_code ?? "-"} · ${Number(result.duration_s || 0).toFixed(2)} s${result.timed_out ? " · timed out" : ""}` : "";
    return el(
      "li",
      { "data-step": step.id },
      el("div", { class: "step-line" }, mark, el("code", {}, step.id), el("span", { class: "muted" }, step.type), el("span", {}, describeStep(step)), el("span", { class: "muted" }, facts)),
      result && result.output ? el("details", {}, el("summary", {}, "output"), el("pre", {}, result.output)) : null,
      item.children && item.children.length ? el("ul", {}, ...item.children.map(node)) : null,
    );
  };
  const tree = state.tree || [];
  document.getElementById("tree").replaceChildren(...(tree.length ? tree.map(node) : [el("li", { class: "muted" }, "no reviewed plan yet")]));

  const points = detail.points || ui.meta.points || {};
  const findings = state.findings || [];
  const verdict = state.safety_verdict;
  document.getElementById("checks").replaceChildren(
    ...Object.entries(points).map(([point, name]) => {
      const mine = findings.filter((finding) => String(finding.point) === String(point));
      const mark = !verdict ? el("span", { class: "mark wait", text: "·" }) : mine.length ? el("span", { class: "mark bad", text: "✗" }) : el("span", { class: "mark ok", text: "✓" });
      return el(
        "li",
        { "data-point": point },
        mark,
        name,
        ...mine.map((finding) => el("span", { class: "reason" }, `step ${finding.step_id}: ${finding.reason} [${finding.source}]`)),
      );
    }),
  );
  const review = state.review;
  document.getElementById("criteria").replaceChildren(
    ...(review && review.criteria && review.criteria.length
      ? review.criteria.map((c) => el("li", {}, el("span", { class: `mark ${c.met ? "ok" : "bad"}`, text: c.met ? "✓" : "✗" }), c.criterion, el("span", { class: "muted" }, ` ${c.evidence}`)))
      : [el("li", { class: "muted" }, state.verify_verdict ? `verdict ${state.verify_verdict}` : "not reviewed yet")]),
  );
}

const TASK_MARK = { completed: "✓", in_progress: "▶", blocked: "✗", cancelled: "–", remaining: "·" };

function renderSession(state) {
  document.getElementById("tasks").replaceChildren(
    ...(state.tasks || []).map((task) =>
      el(
        "li",
        { "data-task": task.id },
        el("span", { class: `mark ${task.status === "completed" ? "ok" : task.status === "blocked" ? "bad" : "wait"}`, text: TASK_MARK[task.status] || "·" }),
        el("code", {}, `#${task.id}`),
        ` P${task.priority} `,
        task.content,
        task.depends_on && task.depends_on.length ? el("span", { class: "muted" }, ` after ${task.depends_on.map((d) => "#" + d).join(", ")}`) : null,
      ),
    ),
  );
  document.getElementById("notes").replaceChildren(
    ...(state.notes || []).slice(-50).map((note) => el("li", {}, el("span", { class: "badge" }, note.type), " ", note.content)),
  );
  const current = state.current || {};
  document.getElementById("iteration").replaceChildren(
    el("p", {}, `iteration ${state.iteration || 0}`, current.task_id ? ` · task #${current.task_id}` : "", current.verdict ? ` · ${current.verdict}` : ""),
    current.summary ? el("p", {}, current.summary) : null,
    ...(current.steps || []).map((line) => el("div", {}, el("code", {}, line))),
    ...(current.results || []).map((line) => el("div", { class: "muted" }, line)),
  );
}

function renderUsage(detail, state) {
  const head = document.querySelector("#usage thead");
  const body = document.querySelector("#usage tbody");
  if (detail.kind === "session") {
    head.replaceChildren(el("tr", {}, el("th", {}, "model calls"), el("th", {}, "prompt tokens"), el("th", {}, "answer tokens"), el("th", {}, "commits")));
    body.replaceChildren(el("tr", {}, el("td", {}, state.model_calls || 0), el("td", {}, state.prompt_tokens || 0), el("td", {}, state.completion_tokens || 0), el("td", {}, state.commits || 0)));
    return;
  }
  head.replaceChildren(el("tr", {}, ...["role", "model", "host", "prompt tok", "answer tok", "seconds", "tok/s", "end"].map((h) => el("th", {}, h))));
  body.replaceChildren(
    ...(state.usage || []).map((u) =>
      el(
        "tr",
        {},
        el("td", {}, u.role),
        el("td", {}, u.model),
        el("td", {}, u.host),
        el("td", {}, u.prompt_tokens),
        el("td", {}, u.completion_tokens),
        el("td", {}, Number(u.duration_s || 0).toFixed(2)),
        el("td", {}, Number(u.tokens_per_s || 0).toFixed(1)),
        el("td", {}, u.done_reason),
      ),
    ),
  );
}

function renderEvents(events) {
  const list = document.getElementById("events");
  const atBottom = list.scrollTop + list.clientHeight >= list.scrollHeight - 4;
  list.replaceChildren(...events.slice(-100).map((event) => el("li", {}, el("span", { class: "phase" }, event.phase), event.message)));
  if (atBottom) list.scrollTop = list.scrollHeight;
}

// --- the live stream -------------------------------------------------------------------------
// Events of the workflow's own stream (models/events.py): model tokens, step starts, output lines
// and ends, verdicts, held steps, tasks, notes, hooks, messages, pauses, the end.

function liveAppend(node, chars) {
  const panel = document.getElementById("live");
  panel.append(node);
  ui.liveChars += chars;
  while (ui.liveChars > LIVE_MAX_CHARS && panel.firstChild) {
    ui.liveChars -= (panel.firstChild.textContent || "").length;
    panel.firstChild.remove();
  }
}

function liveLine(cls, text) {
  ui.tokens = null; // the next tokens start a new block
  const panel = document.getElementById("live");
  const last = panel.lastChild;
  if (last && !(last.textContent || "").endsWith("\n")) liveAppend(document.createTextNode("\n"), 1);
  liveAppend(el("span", { class: cls }, text + "\n"), text.length + 1);
}

function liveTokens(role, text) {
  if (!ui.tokens || ui.tokens.role !== role || !ui.tokens.node.isConnected) {
    const node = el("span", { class: `tokens ${role}` });
    node.append(document.createTextNode(""));
    liveAppend(node, 0);
    ui.tokens = { role, node };
  }
  ui.tokens.node.firstChild.appendData(text);
  ui.liveChars += text.length;
}

function stepMark(stepId, status) {
  ui.steps[stepId] = status;
  const mark = document.querySelector(`#tree li[data-step="${CSS.escape(stepId)}"] > .step-line > .mark`);
  if (mark) mark.replaceWith(markFor(status));
}

function markFor(status) {
  const marks = { running: ["run", "▶"], ok: ["ok", "✓"], failed: ["bad", "✗"], skipped: ["wait", "–"], held: ["held", "⏸"] };
  const [cls, text] = marks[status] || ["wait", "·"];
  return el("span", { class: `mark ${cls}`, text });
}

function appendLive(event) {
  const panel = document.getElementById("live");
  const atBottom = panel.scrollTop + panel.clientHeight >= panel.scrollHeight - 4;
  switch (event.kind) {
    case "tokens":
      liveTokens(event.role || "model", String(event.text || ""));
      break;
    case "model_start":
      liveLine("model", `── ${event.role} · ${event.model} · ${event.schema_name} ──`);
      break;
    case "model_end": {
      const usage = event.usage || {};
      liveLine("model muted", `── ${event.role}: ${usage.completion_tokens ?? "?"} tokens, ${Number(usage.tokens_per_s || 0).toFixed(1)} tok/s ──`);
      break;
    }
    case "model_error":
      liveLine("note", `${event.role} · ${event.model}: ${event.message}`);
      break;
    case "step_start":
      stepMark(event.step_id, "running");
      liveLine("step", `▶ ${event.step_id} ${event.step_type}: ${event.detail}`);
      break;
    case "output":
      for (const line of event.lines || []) liveLine(event.source === "hook" ? "note" : "output", event.source === "hook" ? `[${event.ref}] ${line}` : line);
      break;
    case "step_end": {
      const status = event.skipped ? "skipped" : event.ok ? "ok" : "failed";
      stepMark(event.step_id, status);
      const exit = event.exit_code === null || event.exit_code === undefined ? "" : `exit ${event.exit_code}, `;
      const how = event.skipped ? "skipped" : `${exit}${Number(event.duration_s || 0).toFixed(2)} s${event.timed_out ? ", timed out" : ""}`;
      liveLine(event.ok || event.skipped ? "step" : "note", `${event.ok ? "✓" : event.skipped ? "–" : "✗"} ${event.step_id} (${how})`);
      break;
    }
    case "verdict": {
      const passed = (event.checks || []).filter((c) => c.ok).length;
      liveLine(event.verdict === "PASS" ? "step" : "note", `${event.stage} verdict ${event.verdict} (${passed}/${(event.checks || []).length} checks)`);
      for (const finding of event.findings || []) liveLine("note", `  ${finding}`);
      break;
    }
    case "held":
      liveLine("note", event.resolved ? `${event.step_id} ${event.resolved}` : `held for a person: ${event.step_id}: ${event.reason}`);
      break;
    case "task":
      liveLine("muted", `task #${event.id} [${event.status}] ${event.content}`);
      break;
    case "note":
      liveLine("muted", `note (${event.type}): ${event.content}`);
      break;
    case "hook":
      liveLine(event.ok ? "muted" : "note", `hook ${event.point}: ${event.status}`);
      break;
    case "message":
      liveLine("muted", `message: ${event.text}`);
      break;
    case "paused":
      liveLine("note", event.paused ? "paused" : "resumed");
      break;
    case "phase":
      liveLine("phase", `${event.phase}: ${event.message}`);
      break;
    case "done":
      liveLine(event.outcome === "passed" || event.outcome === "completed" ? "step" : "note", `${event.outcome}${event.message ? ": " + event.message : ""}`);
      break;
    case "notice":
      liveLine("note", String(event.message || ""));
      break;
    default:
      break; // a kind this page does not know: the state view still shows what it changed
  }
  if (atBottom) panel.scrollTop = panel.scrollHeight;
}

// --- actions ---------------------------------------------------------------------------------

function notice(text, bad) {
  const node = document.getElementById("notice");
  node.textContent = text;
  node.className = bad ? "bad" : "";
}

async function act(action, body) {
  if (!ui.selected) return;
  if (action === "cancel" && !confirm(`Cancel ${ui.selected}? The running step is stopped.`)) return;
  try {
    const response = await fetch(`/api/workflows/${encodeURIComponent(ui.selected)}/${action}`, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify(body || {}),
    });
    const answer = await response.json().catch(() => ({ error: `${response.status}` }));
    if (response.ok) notice(answer.message || "done", false);
    else notice(answer.error || `refused (${response.status})`, true);
    return response.ok;
  } catch (error) {
    notice(`the dashboard did not answer: ${error}`, true);
    return false;
  }
}

// --- start -----------------------------------------------------------------------------------

function start() {
  getJSON("/api/meta")
    .then((meta) => {
      ui.meta = meta;
      setLink(document.getElementById("temporal-list"), meta.temporal_ui);
    })
    .catch(() => {});
  for (const button of document.querySelectorAll("#filters button")) {
    button.addEventListener("click", () => {
      ui.kind = button.dataset.kind;
      for (const other of document.querySelectorAll("#filters button")) other.classList.toggle("active", other === button);
      refreshList();
    });
  }
  for (const button of document.querySelectorAll("#controls button[data-action]")) {
    button.addEventListener("click", () => act(button.dataset.action, {}));
  }
  document.getElementById("controls").addEventListener("submit", async (event) => {
    event.preventDefault();
    const input = document.getElementById("message-text");
    if (await act("message", { text: input.value })) input.value = "";
  });
  refreshList();
  setInterval(refreshList, LIST_POLL_MS);
  const fromHash = decodeURIComponent(location.hash.slice(1));
  if (fromHash) select(fromHash);
}

start();
