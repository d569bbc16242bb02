// fume-edge device page: polls the JSON API, refreshes the camera images while the page is visible.
// Sections: access (the token), live panels (the station grid, and one station's details), history, trend,
// controls. A device with several stations shows a grid of them; the panels below show the chosen one.
"use strict";
const COLORS = { Healthy: "#46a758", Transitional: "#f5a524", Acidotic: "#e5484d", co2: "#4ea1ff", ch4: "#c084fc" };
const PH_ALERT_CLASS = { acidosis_risk: "Acidotic", transitional_risk: "Transitional" };
const STATUS_MS = 1000, TREND_MS = 20000, TOKEN_KEY = "fume_edge_token";
const $ = (id) => document.getElementById(id);
const state = { page: 0, written: null, frameMs: 500, live: null, access: null, trend: null, station: null };

// ---- access: the token comes once in the address (#token=..., printed by fume-edge at start; a fragment never
// reaches a server or its logs), is kept in this browser and removed from the address bar.
function takeToken() {
  const m = location.hash.match(/token=([^&]+)/);
  if (m) {
    localStorage.setItem(TOKEN_KEY, decodeURIComponent(m[1]));
    history.replaceState(null, "", location.pathname + location.search);
    $("token-box").hidden = true; text($("subject-msg"), "");
  }
  setCookie(token());
}
takeToken();
window.addEventListener("hashchange", takeToken);  // the printed address pasted into an open page
function token() { return localStorage.getItem(TOKEN_KEY); }
function setCookie(value) {
  if (value) document.cookie = "fume_edge_token=" + encodeURIComponent(value) + "; path=/; SameSite=Strict";
}
function forgetToken() {
  localStorage.removeItem(TOKEN_KEY);
  document.cookie = "fume_edge_token=; path=/; max-age=0; SameSite=Strict";
}
function tokenHelp() {
  const where = state.access ? state.access.token_from : "the address fume-edge printed at start (…/#token=…)";
  return `This needs the device's access token: open the page with ${where}.`;
}
function askForToken(why) {
  text($("token-why"), why + " " + tokenHelp() + " Or paste the token here:");
  $("token-box").hidden = false;
}
async function api(path, options = {}) {
  const t = token();
  const res = await fetch(path, { ...options, headers: { ...(t ? { Authorization: "Bearer " + t } : {}), ...(options.headers || {}) } });
  if (res.status === 401) { if (t) forgetToken(); askForToken(t ? "The stored access token was refused." : ""); throw new Error("401"); }
  if (!res.ok) throw new Error((await res.json().catch(() => ({}))).error || res.statusText);
  return res.json();
}

// ---- small helpers
function text(el, value) { if (el.textContent !== value) el.textContent = value; }
function fmt(v, digits = 1) { return v === null || v === undefined ? "-" : Number(v).toFixed(digits); }
function pct(v) { return v === null || v === undefined ? "-" : (100 * v).toFixed(1) + "%"; }
function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  Object.entries(attrs).forEach(([k, v]) => (k === "class" ? (e.className = v) : e.setAttribute(k, v)));
  children.forEach((c) => e.append(c));
  return e;
}
function utc(iso) { return iso.slice(0, 19).replace("T", " "); }

// ---- one device's status
function showStatus(s) {
  state.access = s.access;
  if (s.live) state.station = s.station;
  if (state.live !== s.live) { state.live = s.live; setMode(s); }
  text($("device"), s.live ? `· ${s.device_id} · ${s.model} (${s.backend})` : `· ${s.device_id} · ${s.model}`);
  text($("subject"), s.subject || "(none)");
  text($("subject-since"), s.subject_since ? "since " + utc(s.subject_since) + " UTC" : "");
  text($("health"), s.live ? s.health.status : "stored");
  $("health").className = "pill " + (s.health.status === "ok" ? "ok" : "bad");
  if (!s.live) return;
  showStations(s);
  showPh(s);
  showPipeline(s);
  const open = s.open_alerts.map((a) => el("li", { class: "alert" }, `${a.type} (${a.cameras.join(", ")}) since ${a.since.slice(11, 19)} UTC`));
  $("open-alerts").replaceChildren(...(open.length ? open : [el("li", { class: "muted" }, "none")]));
  if (!token() && !$("subject-msg").textContent) text($("subject-msg"), "Setting the subject: " + tokenHelp());
  if (state.written !== s.sinks.written) { state.written = s.sinks.written; loadHistory(); }
  state.frameMs = 1000 * s.frame_interval_s;  // the server's http.frame_fps: faster asks would get the same image
}

// ---- the grid of stations (only with more than one): pH class, open alerts, FPS and camera states of each
function showStations(s) {
  const several = (state.several = s.stations.length > 1);
  $("stations").hidden = !several;
  document.querySelectorAll(".station-name").forEach((e) => text(e, several ? "· " + s.station : ""));
  if (!several) return;
  $("station-grid").replaceChildren(...s.stations.map((st) => {
    const alerts = st.open_alerts.map((a) => a.type).join(", ");
    const card = el("button", { type: "button", role: "listitem", "data-station": st.id,
      class: "station" + (st.id === s.station ? " selected" : "") + (alerts ? " alerting" : "") },
      el("b", {}, st.id), el("span", { class: "big-ish " + (st.ph_class || "") }, st.ph_class || "waiting"),
      el("span", { class: alerts ? "alerts" : "muted" }, alerts || "no open alerts"),
      el("span", { class: "muted" }, `${fmt(st.fps)} FPS` + (st.subject ? ` · ${st.subject}` : "")),
      el("span", { class: "pills" }, ...Object.entries(st.cameras).map(([cam, c]) => el("span", { class: "pill " + c }, `${cam.toUpperCase()} ${c}`))));
    card.addEventListener("click", () => chooseStation(st.id));
    return card;
  }));
}
function chooseStation(id) {
  if (id !== state.station) ["co2", "ch4"].forEach((cam) => $("frame-" + cam).removeAttribute("src"));  // not the old one's
  state.station = id;
  text($("subject-msg"), "");
  document.querySelectorAll(".station").forEach((e) => e.classList.toggle("selected", e.dataset.station === id));
  api("/api/status?station=" + encodeURIComponent(id)).then(showStatus).then(() => loadTrend(false)).catch(() => {});
}

function setMode(s) {
  document.body.classList.toggle("archive", !s.live);
  $("archive-box").hidden = s.live;
  if (s.live) { refreshFrame("co2"); refreshFrame("ch4"); return; }
  text($("archive-box"), `A stored alert database of ${s.device_id}: history, trend and snapshots as recorded. ` +
    "No live run here, so no cameras, live pH or pipeline figures.");
  loadHistory();
}

function showPh(s) {
  const ph = s.ph;
  text($("ph-class"), ph.class || "waiting for results");
  $("ph-class").className = "big " + (ph.class || "");
  $("ph-bars").replaceChildren(...ph.classes.map((name) => {
    const p = ph.smoothed ? ph.smoothed[name] : 0;
    const fill = el("div"); fill.style.width = (100 * p).toFixed(1) + "%"; fill.style.background = COLORS[name];
    return el("div", { class: "bar" }, el("span", {}, name), el("span", {}, fill), el("span", {}, p.toFixed(2)));
  }));
  // An open pH alert beside another class: say why both are right (the alert's hold, the class's moment).
  const differ = s.open_alerts.filter((a) => PH_ALERT_CLASS[a.type] && ph.class && PH_ALERT_CLASS[a.type] !== ph.class);
  $("ph-note").hidden = !differ.length;
  if (differ.length) {
    const a = differ[0], cls = PH_ALERT_CLASS[a.type];
    text($("ph-note"), `${a.type} is still open: it follows P(${cls}) smoothed over minutes and ends only after that ` +
      `has stayed low for a while. ${ph.class} is the reading now.`);
  }
  text($("gas-areas"), s.gas_areas ? "gas area: " + Object.entries(s.gas_areas).map(([g, a]) => `${g.toUpperCase()} ${pct(a)}`).join(" · ") : "");
}

function showPipeline(s) {
  text($("fps"), fmt(s.fps)); text($("latency"), fmt(s.latency_ms)); text($("infer-ms"), fmt(s.stage_ms.infer));
  const rows = Object.entries(s.cameras).map(([cam, c]) => {
    const pill = $("state-" + cam);
    if (pill) { text(pill, c.state); pill.className = "pill " + c.state; }
    return el("tr", {}, el("td", {}, cam.toUpperCase()), el("td", {}, c.state), el("td", {}, String(c.frames)),
      el("td", {}, String(c.garbage)), el("td", {}, String(c.overwritten + c.unmatched + c.out_of_order)), el("td", {}, String(c.reconnects)));
  });
  $("cam-table").tBodies[0].replaceChildren(...rows);
  const k = s.sinks;
  text($("sinks"), `alert events written ${k.written} · dropped ${k.dropped} · sink errors ${k.errors}` +
    (k.mqtt_connected === null ? "" : ` · MQTT ${k.mqtt_connected ? "up" : "DOWN"}, unsent ${k.mqtt_unsent}`));
}

async function pollStatus() {
  try {
    const asked = state.station;
    const s = await api("/api/status" + (asked ? "?station=" + encodeURIComponent(asked) : ""));
    if (state.station === asked) showStatus(s);  // else another station was chosen meanwhile
  } catch (e) {
    text($("health"), e.message === "401" ? "token needed" : "offline"); $("health").className = "pill bad";
  }
  setTimeout(pollStatus, STATUS_MS);
}

// Camera images of the chosen station: the next one is asked for only after the last arrived, and only while the
// page is visible; one that arrives after another station was chosen is not shown.
function refreshFrame(cam) {
  if (!state.live) return;
  const img = $("frame-" + cam), station = state.station;
  const next = () => setTimeout(() => refreshFrame(cam), state.frameMs);
  if (document.visibilityState !== "visible") { next(); return; }
  const loader = new Image();
  loader.onload = () => { if (state.station === station) img.src = loader.src; next(); };
  loader.onerror = next;
  loader.src = `/api/frame/${encodeURIComponent(station)}/${cam}.jpg?n=${Date.now()}`;
}

// ---- history
async function loadHistory() {
  const q = new URLSearchParams({ page: state.page, per_page: 15 });
  const type = $("f-type").value, hours = $("f-since").value, subject = $("f-subject").value.trim();
  if (type) q.set("type", type);
  if (hours) q.set("since", new Date(Date.now() - hours * 3600e3).toISOString());
  if (subject) q.set("subject", subject);
  try {
    const data = await api("/api/alerts?" + q);
    $("history").tBodies[0].replaceChildren(...data.events.map(historyRow));
    text($("page-no"), "page " + (data.page + 1));
    $("newer").disabled = data.page === 0; $("older").disabled = !data.has_more;
  } catch (e) { /* shown by the status poll */ }
}
function historyRow(e) {
  const probs = e.probs ? Object.entries(e.probs).map(([n, p]) => n[0] + " " + p.toFixed(2)).join(" ") : "-";
  const snap = e.snapshot_url ? el("a", { href: e.snapshot_url, target: "_blank" }, el("img", { src: e.snapshot_url, alt: "snapshot" })) : "-";
  const cell = (label, content, cls = "") => el("td", { "data-label": label, class: cls }, content);
  const where = state.several && e.station ? ` · ${e.station}` : "";
  return el("tr", {}, cell("time (UTC)", utc(e.time)), cell("type", e.type + where), cell("state", e.state + (e.reason ? ` (${e.reason})` : "")),
    cell("subject", e.subject || "-"), cell("pH", probs, "probs"), cell("snapshot", snap));
}

// ---- trend: smoothed pH probabilities (solid, 0-1) and gas areas (dashed, scaled) per stored minute
async function loadTrend(again = true) {
  const hours = $("trend-hours").value;
  try {
    const q = new URLSearchParams();
    if (hours) q.set("hours", hours);
    if (state.several && state.station) q.set("station", state.station);  // one station's minutes, not all mixed
    const query = q.toString();
    state.trend = await api("/api/trend" + (query ? "?" + query : ""));
    drawTrend(state.trend);
  } catch (e) { /* shown by the status poll */ }
  if (again && state.live !== false) setTimeout(loadTrend, TREND_MS);
}

const SVG = "http://www.w3.org/2000/svg";
function svgEl(tag, attrs, content) {
  const e = document.createElementNS(SVG, tag);
  Object.entries(attrs).forEach(([k, v]) => e.setAttribute(k, v));
  if (content !== undefined) e.textContent = content;
  return e;
}
const GAP_MS = 150000;  // rows further apart than this are not joined by a line
const TICK_MINUTES = [1, 2, 5, 10, 15, 30, 60, 120, 180, 360, 720, 1440, 2880, 10080];
function timeTicks(t0, t1, maxTicks) {
  const span = (t1 - t0) / 60000;
  const step = (TICK_MINUTES.find((m) => span / m <= maxTicks) || TICK_MINUTES[TICK_MINUTES.length - 1]) * 60000;
  const ticks = [];
  for (let t = Math.ceil(t0 / step) * step; t <= t1; t += step) ticks.push(t);
  return { ticks, days: span > 1440 };
}

function drawTrend(data) {
  const svg = $("trend"), W = Math.max(svg.clientWidth, 200), H = svg.clientHeight || 220;
  const m = { l: 34, r: 10, t: 10, b: 36 }, pw = W - m.l - m.r, ph = H - m.t - m.b;
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  svg.replaceChildren();
  const t0 = Date.parse(data.since), t1 = Date.parse(data.until), rows = data.rows;
  const x = (t) => m.l + ((t - t0) / Math.max(t1 - t0, 1)) * pw;
  const y = (v) => m.t + (1 - v) * ph;
  const yAxis = svgEl("g", { class: "y-axis" });
  [0, 0.5, 1].forEach((v) => {
    yAxis.append(svgEl("line", { class: "grid", x1: m.l, x2: W - m.r, y1: y(v), y2: y(v) }));
    yAxis.append(svgEl("text", { x: m.l - 4, y: y(v) + 4, "text-anchor": "end" }, v.toFixed(1)));
  });
  yAxis.append(svgEl("text", { x: 2, y: m.t + 2, "dominant-baseline": "hanging" }, "P"));
  const xAxis = svgEl("g", { class: "x-axis" });
  const { ticks, days } = timeTicks(t0, t1, Math.max(2, Math.floor(pw / 70)));
  ticks.forEach((t) => {
    const iso = new Date(t).toISOString();
    xAxis.append(svgEl("line", { class: "grid", x1: x(t), x2: x(t), y1: m.t, y2: m.t + ph }));
    xAxis.append(svgEl("text", { x: x(t), y: m.t + ph + 14, "text-anchor": "middle" }, days ? iso.slice(5, 10) + " " + iso.slice(11, 16) : iso.slice(11, 16)));
  });
  xAxis.append(svgEl("text", { class: "axis-title", x: m.l + pw / 2, y: H - 4, "text-anchor": "middle" }, "time (UTC)"));
  svg.append(yAxis, xAxis);
  if (!rows.length) {
    svg.append(svgEl("text", { x: m.l + pw / 2, y: m.t + ph / 2, "text-anchor": "middle" }, "no minutes stored yet in this window"));
    text($("trend-legend"), state.live ? "A minute is stored when it ends; the first appears within a minute of the start." : "");
    return;
  }
  const maxArea = Math.max(0.01, ...rows.flatMap((r) => Object.values(r.gas_areas).filter((a) => a !== null)));
  // One path per series, broken where minutes are missing (the device was off), dots while there are few.
  const series = (values, color, dashed) => {
    let d = "", last = null;
    const dots = [];
    rows.forEach((r, i) => {
      if (values[i] === null || values[i] === undefined) { last = null; return; }
      const t = Date.parse(r.time) + 30000, px = x(t).toFixed(1), py = y(values[i]).toFixed(1);
      d += (last === null || t - last > GAP_MS ? "M" : "L") + px + "," + py + " ";
      last = t;
      dots.push([px, py]);
    });
    if (!d) return;
    svg.append(svgEl("path", { class: "series", d, fill: "none", stroke: color, "stroke-width": 2,
      ...(dashed ? { "stroke-dasharray": "5 3" } : {}) }));
    if (dots.length <= 90) dots.forEach(([cx, cy]) => svg.append(svgEl("circle", { class: "point", cx, cy, r: 2.5, fill: color })));
  };
  data.classes.forEach((name) => series(rows.map((r) => (r.probs ? r.probs[name] : null)), COLORS[name], false));
  data.cameras.forEach((gas) => series(rows.map((r) => (r.gas_areas[gas] === null || r.gas_areas[gas] === undefined ? null : r.gas_areas[gas] / maxArea)), COLORS[gas], true));
  text($("trend-legend"), `${rows.length} minutes · solid: smoothed P(${data.classes.join(", ")}), 0-1 · dashed: gas area ` +
    `CO2 (blue), CH4 (purple), 0-${pct(maxArea)}`);
}

// ---- controls
async function setSubject(value) {
  if (!token()) { askForToken("Setting the subject needs the access token."); text($("subject-msg"), "Setting the subject: " + tokenHelp()); return; }
  try {
    const res = await api("/api/subject", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ subject: value, station: state.station }) });
    text($("subject-msg"), "set: " + (res.subject || "(none)") + (res.station ? " at " + res.station : ""));
  } catch (e) { text($("subject-msg"), e.message === "401" ? "Setting the subject: " + tokenHelp() : e.message); }
}

// Model installs (a live run that follows the model store): the install's steps, polled while one runs.
async function pollModel() {
  let res;
  try { res = await fetch("/api/model", { headers: token() ? { Authorization: "Bearer " + token() } : {} }); } catch (e) { res = null; }
  if (res && res.status === 404) return;  // this server installs no models: the card stays hidden
  if (res && res.ok) {
    const s = await res.json();
    $("model-card").hidden = false;
    text($("model-progress"), [...s.lines, s.running ? "…" : ""].join("\n"));
    setTimeout(pollModel, s.running ? 1000 : 10000);
  } else setTimeout(pollModel, 10000);
}
async function installModel(bundle) {
  if (!token()) { askForToken("Installing a model needs the access token."); return; }
  try {
    const res = await api("/api/model", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ bundle }) });
    text($("model-progress"), "installing " + res.installing + " …");
    setTimeout(pollModel, 500);
  } catch (e) { text($("model-progress"), e.message === "401" ? "Installing a model: " + tokenHelp() : e.message); }
}

$("model-form").addEventListener("submit", (e) => { e.preventDefault(); installModel($("model-input").value.trim()); });
$("subject-form").addEventListener("submit", (e) => { e.preventDefault(); setSubject($("subject-input").value); });
$("subject-clear").addEventListener("click", () => setSubject(""));
$("token-form").addEventListener("submit", (e) => {
  e.preventDefault(); localStorage.setItem(TOKEN_KEY, $("token-input").value.trim()); setCookie(token());
  $("token-box").hidden = true; text($("subject-msg"), "");
});
["f-type", "f-since"].forEach((id) => $(id).addEventListener("change", () => { state.page = 0; loadHistory(); }));
$("f-subject").addEventListener("change", () => { state.page = 0; loadHistory(); });
$("newer").addEventListener("click", () => { state.page = Math.max(0, state.page - 1); loadHistory(); });
$("older").addEventListener("click", () => { state.page += 1; loadHistory(); });
$("trend-hours").addEventListener("change", () => loadTrend(false));
window.addEventListener("resize", () => { if (state.trend) drawTrend(state.trend); });
["acidosis_risk", "transitional_risk", "gas_absent", "camera_degraded", "camera_offline", "cameras_unpaired", "sink_degraded",
  "model_installed", "model_rejected", "model_switched", "model_rolled_back"]
  .forEach((t) => $("f-type").append(el("option", { value: t }, t)));

pollStatus(); loadTrend(); loadHistory(); pollModel();
