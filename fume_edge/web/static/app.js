// fume-edge device page: polls the JSON API, refreshes the camera images while the page is visible.
"use strict";
const COLORS = { Healthy: "#46a758", Transitional: "#f5a524", Acidotic: "#e5484d", co2: "#4ea1ff", ch4: "#c084fc" };
const STATUS_MS = 1000;
const $ = (id) => document.getElementById(id);
const state = { page: 0, written: null, frameMs: 500 };

// The token: from #token=... once (the fragment never reaches the server or its logs), then this tab's storage.
(function takeToken() {
  const m = location.hash.match(/token=([^&]+)/);
  if (m) { sessionStorage.setItem("token", decodeURIComponent(m[1])); history.replaceState(null, "", location.pathname); }
  setCookie(sessionStorage.getItem("token"));
})();
function setCookie(token) {
  if (token) document.cookie = "fume_edge_token=" + encodeURIComponent(token) + "; path=/; SameSite=Strict";
}
function headers() {
  const t = sessionStorage.getItem("token");
  return t ? { Authorization: "Bearer " + t } : {};
}
async function api(path, options = {}) {
  const res = await fetch(path, { ...options, headers: { ...headers(), ...(options.headers || {}) } });
  if (res.status === 401) { $("token-box").hidden = false; throw new Error("401"); }
  if (!res.ok) throw new Error((await res.json().catch(() => ({}))).error || res.statusText);
  return res.json();
}
function text(el, value) { if (el.textContent !== value) el.textContent = value; }
function fmt(v, digits = 1) { return v === null || v === undefined ? "-" : Number(v).toFixed(digits); }
function pct(v) { return v === null || v === undefined ? "-" : (100 * v).toFixed(1) + "%"; }
function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  Object.entries(attrs).forEach(([k, v]) => (k === "class" ? (e.className = v) : e.setAttribute(k, v)));
  children.forEach((c) => e.append(c));
  return e;
}

function showStatus(s) {
  text($("device"), `· ${s.device_id} · ${s.model} (${s.backend})`);
  const ph = s.ph;
  const cls = ph.class || "waiting for results";
  text($("ph-class"), cls);
  $("ph-class").className = "big " + (ph.class || "");
  const bars = $("ph-bars");
  bars.replaceChildren(...ph.classes.map((name) => {
    const p = ph.smoothed ? ph.smoothed[name] : 0;
    const fill = el("div"); fill.style.width = (100 * p).toFixed(1) + "%"; fill.style.background = COLORS[name];
    return el("div", { class: "bar" }, el("span", {}, name), el("span", {}, fill), el("span", {}, p.toFixed(2)));
  }));
  text($("gas-areas"), s.gas_areas ? "gas area: " + Object.entries(s.gas_areas).map(([g, a]) => `${g.toUpperCase()} ${pct(a)}`).join(" · ") : "");
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
  const open = s.open_alerts.map((a) => el("li", { class: "alert" }, `${a.type} (${a.cameras.join(", ")}) since ${a.since.slice(11, 19)} UTC`));
  $("open-alerts").replaceChildren(...(open.length ? open : [el("li", { class: "muted" }, "none")]));
  text($("subject"), s.subject || "(none)");
  text($("subject-since"), s.subject_since ? "since " + s.subject_since.slice(0, 19).replace("T", " ") + " UTC" : "");
  if (state.written !== k.written) { state.written = k.written; loadHistory(); }
  state.frameMs = 1000 * s.frame_interval_s;  // the server's http.frame_fps: faster asks would get the same image
  text($("health"), s.health.status); $("health").className = "pill " + (s.health.status === "ok" ? "ok" : "bad");
}

async function pollStatus() {
  try {
    showStatus(await api("/api/status"));
  } catch (e) {
    text($("health"), e.message === "401" ? "token needed" : "offline"); $("health").className = "pill bad";
  }
  setTimeout(pollStatus, STATUS_MS);
}

// Camera images: the next one is asked for only after the last arrived, and only while the page is visible.
function refreshFrame(cam) {
  const img = $("frame-" + cam);
  const next = () => setTimeout(() => refreshFrame(cam), state.frameMs);
  if (document.visibilityState !== "visible") { next(); return; }
  const loader = new Image();
  loader.onload = () => { img.src = loader.src; next(); };
  loader.onerror = next;
  loader.src = `/api/frame/${cam}.jpg?n=${Date.now()}`;
}

async function loadHistory() {
  const q = new URLSearchParams({ page: state.page, per_page: 15 });
  const type = $("f-type").value, hours = $("f-since").value, subject = $("f-subject").value.trim();
  if (type) q.set("type", type);
  if (hours) q.set("since", new Date(Date.now() - hours * 3600e3).toISOString());
  if (subject) q.set("subject", subject);
  try {
    const data = await api("/api/alerts?" + q);
    $("history").tBodies[0].replaceChildren(...data.events.map((e) => {
      const probs = e.probs ? Object.entries(e.probs).map(([n, p]) => n[0] + " " + p.toFixed(2)).join(" ") : "-";
      const snap = e.snapshot_url ? el("a", { href: e.snapshot_url, target: "_blank" }, el("img", { src: e.snapshot_url, alt: "snapshot" })) : "-";
      return el("tr", {}, el("td", {}, e.time.slice(0, 19).replace("T", " ")), el("td", {}, e.type),
        el("td", {}, e.state + (e.reason ? ` (${e.reason})` : "")), el("td", {}, e.subject || "-"), el("td", {}, probs), el("td", {}, snap));
    }));
    text($("page-no"), "page " + (data.page + 1));
    $("newer").disabled = data.page === 0; $("older").disabled = !data.has_more;
  } catch (e) { /* shown by the status poll */ }
}

async function loadTrend() {
  try {
    const data = await api("/api/trend?hours=" + $("trend-hours").value);
    drawTrend(data);
  } catch (e) { /* shown by the status poll */ }
  setTimeout(loadTrend, 60000);
}

function drawTrend(data) {
  const svg = $("trend"), W = 600, H = 200, rows = data.rows;
  const ns = "http://www.w3.org/2000/svg";
  svg.replaceChildren();
  if (!rows.length) { text($("trend-legend"), "no minutes recorded yet in this range"); return; }
  const t0 = Date.parse(data.since), t1 = Date.now();
  const x = (t) => ((Date.parse(t) - t0) / Math.max(t1 - t0, 1)) * W;
  const maxArea = Math.max(0.01, ...rows.flatMap((r) => Object.values(r.gas_areas).filter((a) => a !== null)));
  const line = (values, color, dashed) => {
    const pts = rows.map((r, i) => values[i] === null ? null : `${x(r.time).toFixed(1)},${(H - values[i] * H).toFixed(1)}`).filter(Boolean);
    if (!pts.length) return;
    const p = document.createElementNS(ns, "polyline");
    p.setAttribute("points", pts.join(" ")); p.setAttribute("fill", "none"); p.setAttribute("stroke", color);
    p.setAttribute("stroke-width", "2"); if (dashed) p.setAttribute("stroke-dasharray", "5 3");
    svg.append(p);
  };
  data.classes.forEach((name) => line(rows.map((r) => (r.probs ? r.probs[name] : null)), COLORS[name], false));
  data.cameras.forEach((gas) => line(rows.map((r) => (r.gas_areas[gas] === null ? null : r.gas_areas[gas] / maxArea)), COLORS[gas], true));
  text($("trend-legend"), `${rows.length} minutes · solid: smoothed P(${data.classes.join(", ")}) on 0-1 · dashed: gas area ` +
    `CO2 (blue), CH4 (purple) on 0-${pct(maxArea)}`);
}

async function setSubject(value) {
  try {
    const res = await api("/api/subject", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ subject: value }) });
    text($("subject-msg"), "set: " + (res.subject || "(none)"));
  } catch (e) { text($("subject-msg"), e.message === "401" ? "setting the subject needs the access token" : e.message); }
}

$("subject-form").addEventListener("submit", (e) => { e.preventDefault(); setSubject($("subject-input").value); });
$("subject-clear").addEventListener("click", () => setSubject(""));
$("token-form").addEventListener("submit", (e) => {
  e.preventDefault(); sessionStorage.setItem("token", $("token-input").value); setCookie($("token-input").value);
  $("token-box").hidden = true;
});
["f-type", "f-since"].forEach((id) => $(id).addEventListener("change", () => { state.page = 0; loadHistory(); }));
$("f-subject").addEventListener("change", () => { state.page = 0; loadHistory(); });
$("newer").addEventListener("click", () => { state.page = Math.max(0, state.page - 1); loadHistory(); });
$("older").addEventListener("click", () => { state.page += 1; loadHistory(); });
$("trend-hours").addEventListener("change", () => api("/api/trend?hours=" + $("trend-hours").value).then(drawTrend).catch(() => {}));
["acidosis_risk", "transitional_risk", "gas_absent", "camera_degraded", "camera_offline"].forEach((t) => $("f-type").append(el("option", { value: t }, t)));

pollStatus(); loadTrend(); refreshFrame("co2"); refreshFrame("ch4");
