// fanflow serve: the web UI. Vanilla JS, no dependencies, served by the server itself.
"use strict";

const main = document.getElementById("main");
let token = sessionStorage.getItem("fanflow-token") || "";
let leave = [];  // cleanups of the current page (timers, streams)

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (v !== undefined && v !== null && v !== false) el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return el;
}

function headers(extra) {
  const out = Object.assign({}, extra || {});
  if (token) out.authorization = "Bearer " + token;
  return out;
}

async function api(path, options) {
  const opts = Object.assign({}, options || {});
  opts.headers = headers(opts.headers);
  const reply = await fetch(path, opts);
  if (reply.status === 401) { askToken(); throw new Error("a bearer token is needed"); }
  const text = await reply.text();
  const body = text ? JSON.parse(text) : null;
  if (reply.status >= 400) throw new Error((body && body.detail) || reply.statusText);
  return body;
}

function askToken() {
  const form = document.getElementById("token-form");
  form.hidden = false;
}
document.getElementById("token-form").addEventListener("submit", (e) => {
  e.preventDefault();
  token = document.getElementById("token").value.trim();
  sessionStorage.setItem("fanflow-token", token);
  document.getElementById("token-form").hidden = true;
  route();
});

// ---------------------------------------------------------------- forms from JSON schemas

function schemaForm(schema, submitLabel, onSubmit, extraJson) {
  const props = (schema && schema.properties) || {};
  const required = new Set((schema && schema.required) || []);
  const form = h("form", { class: "schema" });
  const fields = [];
  for (const [name, prop] of Object.entries(props)) {
    const kind = prop.type || (prop.anyOf ? "json" : "json");
    const id = "f-" + name;
    let input;
    if (kind === "boolean") input = h("input", { type: "checkbox", id, name });
    else if (kind === "integer" || kind === "number") input = h("input", { type: "number", id, name, step: kind === "integer" ? "1" : "any", required: required.has(name) });
    else if (kind === "string") input = h("input", { type: "text", id, name, required: required.has(name) });
    else input = h("textarea", { id, name, rows: 2, placeholder: "JSON" });
    if (prop.default !== undefined && input.type !== "checkbox") input.value = kind === "string" || kind === "integer" || kind === "number" ? prop.default : JSON.stringify(prop.default);
    if (prop.default === true && input.type === "checkbox") input.checked = true;
    fields.push([name, kind, input]);
    form.append(h("label", { for: id }, name + (required.has(name) ? " *" : "") + (prop.description ? " — " + prop.description : "")), input);
  }
  let extra = null;
  if (extraJson) {
    extra = h("textarea", { name: "__extra", rows: 2, placeholder: '{"more": "fields"}' });
    form.append(h("label", {}, Object.keys(props).length ? "more fields (JSON object)" : "fields (JSON object)"), extra);
  }
  const error = h("p", { class: "error" });
  form.append(h("button", { class: "primary", type: "submit" }, submitLabel), error);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    error.textContent = "";
    try {
      const value = extra && extra.value.trim() ? JSON.parse(extra.value) : {};
      for (const [name, kind, input] of fields) {
        if (kind === "boolean") value[name] = input.checked;
        else if (input.value === "") continue;
        else if (kind === "integer") value[name] = parseInt(input.value, 10);
        else if (kind === "number") value[name] = parseFloat(input.value);
        else if (kind === "string") value[name] = input.value;
        else value[name] = JSON.parse(input.value);
      }
      await onSubmit(value);
    } catch (err) { error.textContent = String(err.message || err); }
  });
  return form;
}

// ---------------------------------------------------------------- pages

async function workflowsPage() {
  const { workflows } = await api("/workflows");
  main.replaceChildren(h("h2", {}, "Workflows"));
  if (!workflows.length) main.append(h("p", { class: "muted" }, "No workflows are served."));
  for (const name of workflows) {
    const graph = h("div", { class: "graph fanflow" }, "…");
    const start = h("div", {});
    main.append(h("section", { class: "card workflow", "data-name": name },
      h("h3", {}, name), h("div", { class: "cols" }, graph, h("div", {}, h("h3", {}, "Start a run"), start))));
    api(`/ui/api/workflows/${encodeURIComponent(name)}/graph`).then((d) => { graph.innerHTML = d.svg; });
    api(`/workflows/${encodeURIComponent(name)}/schema`).then(({ start: schema }) => {
      start.append(schemaForm(schema, "Start", async (value) => {
        const data = await api(`/workflows/${encodeURIComponent(name)}/run-nowait`, {
          method: "POST", headers: { "content-type": "application/json" },
          body: JSON.stringify({ start_event: value }),
        });
        location.hash = "#/runs/" + data.handler_id;
      }, true));
    });
  }
}

const STATUSES = ["running", "completed", "failed", "cancelled"];

async function runsPage() {
  const wanted = new Set(JSON.parse(sessionStorage.getItem("fanflow-status") || "[]"));
  const filters = h("div", { class: "filters" }, "Status: ",
    STATUSES.map((s) => h("label", {}, h("input", { type: "checkbox", value: s, checked: wanted.has(s),
      onchange: (e) => { e.target.checked ? wanted.add(s) : wanted.delete(s);
        sessionStorage.setItem("fanflow-status", JSON.stringify([...wanted])); refresh(); } }), " " + s)));
  const body = h("tbody", {});
  main.replaceChildren(h("h2", {}, "Runs"), filters,
    h("table", { id: "runs" }, h("thead", {}, h("tr", {}, ["Handler", "Workflow", "Status", "Started", "Ended"].map((t) => h("th", {}, t)))), body));
  async function refresh() {
    const query = [...wanted].map((s) => "status=" + s).join("&");
    const { handlers } = await api("/handlers" + (query ? "?" + query : ""));
    body.replaceChildren(...handlers.map((d) => h("tr", { "data-id": d.handler_id },
      h("td", {}, h("a", { href: "#/runs/" + d.handler_id }, h("code", {}, d.handler_id.slice(0, 12)))),
      h("td", {}, d.workflow_name), h("td", {}, h("span", { class: "status " + d.status }, d.status)),
      h("td", {}, when(d.started_at)), h("td", {}, when(d.completed_at)))));
  }
  await refresh();
  const timer = setInterval(() => refresh().catch(() => {}), 1000);
  leave.push(() => clearInterval(timer));
}

function when(iso) { return iso ? new Date(iso).toLocaleString() : "–"; }

async function runPage(id) {
  let data = await api("/handlers/" + id);
  const status = h("span", { class: "status " + data.status, id: "run-status" }, data.status);
  const cancel = h("button", { class: "danger", id: "cancel", onclick: async () => {
    try { await api(`/handlers/${id}/cancel`, { method: "POST" }); } catch (err) { alert(err.message); }
  } }, "Cancel run");
  const graph = h("div", { class: "graph fanflow", id: "run-graph" });
  const timeline = h("ol", { class: "timeline", id: "timeline" });
  const state = h("pre", { id: "state" }, "{}");
  const ask = h("div", { id: "ask" });
  const result = h("div", { id: "result" });
  main.replaceChildren(
    h("h2", {}, data.workflow_name + " · run ", h("code", {}, id.slice(0, 12)), " ", status),
    data.status === "running" ? cancel : "",
    h("div", { class: "cols" },
      h("div", {}, h("div", { class: "card" }, graph), h("div", { class: "card" }, h("h3", {}, "Events"), timeline)),
      h("div", {}, ask, result, h("div", { class: "card" }, h("h3", {}, "State"), state))));
  const running = new Map();  // step name -> invocations running
  let steps = {};
  let drawing = false, again = false;
  async function redraw() {
    if (drawing) { again = true; return; }
    drawing = true;
    try {
      const d = await api(`/ui/api/handlers/${id}/graph`);
      graph.innerHTML = d.svg; steps = d.steps; light();
      const s = await api(`/ui/api/handlers/${id}/state`);
      state.textContent = JSON.stringify(s.state, null, 2);
      await showAsk(s.waiting);
    } finally {
      drawing = false;
      if (again) { again = false; setTimeout(redraw, 150); }
    }
  }
  function light() {
    for (const [name, nodeId] of Object.entries(steps)) {
      const node = graph.querySelector(`[data-id="${nodeId}"]`);
      if (node) node.classList.toggle("running", (running.get(name) || 0) > 0);
    }
  }
  let schemas = null;
  async function showAsk(waiting) {
    if (!waiting || !waiting.length || data.status !== "running") { ask.replaceChildren(); return; }
    const type = waiting[0].type.split(":").pop().split(".").pop();
    if (ask.dataset.type === type) return;
    schemas = schemas || (await api(`/workflows/${encodeURIComponent(data.workflow_name)}/events`)).events;
    const schema = schemas.find((s) => s.title === type) || { properties: {} };
    ask.dataset.type = type;
    ask.replaceChildren(h("div", { class: "card ask" }, h("h3", {}, "Input requested: " + type),
      h("p", { class: "muted", id: "ask-prompt" }, ask.dataset.prompt || ""),
      schemaForm(schema, "Send answer", async (value) => {
        await api("/events/" + id, { method: "POST", headers: { "content-type": "application/json" },
          body: JSON.stringify({ event: { type, value } }) });
        ask.replaceChildren(h("p", { class: "muted" }, "Answer sent."));
      })));
  }
  function onEvent(seq, ev) {
    const internal = (ev.types || []).includes("InternalDispatchEvent");
    if (ev.type === "StepStateChanged") {
      const n = running.get(ev.value.name) || 0;
      running.set(ev.value.name, Math.max(0, n + (ev.value.step_state === "running" ? 1 : -1)));
      light();
    } else {
      timeline.append(h("li", { class: internal ? "internal" : "" }, h("span", { class: "seq" }, seq),
        h("span", { class: "type" }, ev.type), " ", h("code", {}, JSON.stringify(ev.value))));
      timeline.scrollTop = timeline.scrollHeight;
    }
    if ((ev.types || []).includes("InputRequiredEvent") || ev.type === "InputRequiredEvent") {
      ask.dataset.prompt = ev.value.prefix || "";
      const prompt = document.getElementById("ask-prompt");
      if (prompt) prompt.textContent = ask.dataset.prompt;
    }
    const final = ev.type === "StopEvent" || (ev.types || []).includes("StopEvent");
    if (final) {
      running.clear();
      result.replaceChildren(h("div", { class: "card" }, h("h3", {}, "Result"), h("pre", { id: "result-value" }, JSON.stringify(ev.value, null, 2))));
      api("/handlers/" + id).then((d) => { data = d; status.textContent = d.status; status.className = "status " + d.status; cancel.remove(); redraw(); });
    } else if (!internal || ev.type === "StepStateChanged") {
      redraw();
    }
  }
  redraw();
  follow(id, onEvent);
}

// Server-Sent Events over fetch, so that the bearer token goes in a header.
function follow(id, onEvent) {
  const control = new AbortController();
  leave.push(() => control.abort());
  let last = -1;
  (async () => {
    for (let attempt = 0; attempt < 20 && !control.signal.aborted; attempt++) {
      try {
        const reply = await fetch(`/events/${id}?sse=true&include_internal=true&after_sequence=${last}`,
          { headers: headers(), signal: control.signal });
        if (reply.status === 204 || reply.status === 404) return;
        const reader = reply.body.getReader();
        const decoder = new TextDecoder();
        let buffer = "";
        for (;;) {
          const { value, done } = await reader.read();
          if (done) return;
          buffer += decoder.decode(value, { stream: true });
          let cut;
          while ((cut = buffer.indexOf("\n\n")) >= 0) {
            const block = buffer.slice(0, cut); buffer = buffer.slice(cut + 2);
            let seq = null, payload = null;
            for (const line of block.split("\n")) {
              if (line.startsWith("id:")) seq = parseInt(line.slice(3), 10);
              else if (line.startsWith("data:")) payload = line.slice(5).trim();
            }
            if (payload === null) continue;
            if (seq !== null) last = seq;
            onEvent(seq, JSON.parse(payload));
          }
        }
      } catch (err) {
        if (control.signal.aborted) return;
        await new Promise((r) => setTimeout(r, 500));
      }
    }
  })();
}

async function route() {
  for (const f of leave.splice(0)) f();
  const hash = location.hash || "#/workflows";
  document.getElementById("nav-workflows").className = hash.startsWith("#/workflows") ? "on" : "";
  document.getElementById("nav-runs").className = hash.startsWith("#/runs") ? "on" : "";
  try {
    const run = hash.match(/^#\/runs\/([0-9a-zA-Z_-]+)$/);
    if (run) await runPage(run[1]);
    else if (hash.startsWith("#/runs")) await runsPage();
    else await workflowsPage();
  } catch (err) {
    main.replaceChildren(h("p", { class: "error" }, String(err.message || err)));
  }
}

window.addEventListener("hashchange", route);
route();
