// Shared by every page: the console's own /api (never the gateway), UTC dates, formats, tables, charts.
// Every chart is drawn from the same rows as the table beside it.

const USD = new Intl.NumberFormat("en-US", {
  style: "currency", currency: "USD", minimumFractionDigits: 2, maximumFractionDigits: 8,
});
const COUNT = new Intl.NumberFormat("en-US");
const PERCENT = new Intl.NumberFormat("en-US", { style: "percent", minimumFractionDigits: 1, maximumFractionDigits: 1 });

export const usd = (value) => USD.format(value);
const CENTS = new Intl.NumberFormat("en-US", { style: "currency", currency: "USD", minimumFractionDigits: 2, maximumFractionDigits: 2 });
export const usdCents = (value) => CENTS.format(value);
// An exact decimal string of the chargeback ("1234.50000000") as USD, digit for digit: $1,234.50.
export function usdExact(text) {
  const [whole, frac = ""] = String(text).replace(/^-/, "").split(".");
  const cents = frac.replace(/0+$/, "").padEnd(2, "0");
  return `${String(text).startsWith("-") ? "-" : ""}$${whole.replace(/\B(?=(\d{3})+(?!\d))/g, ",")}.${cents}`;
}
export const count = (value) => COUNT.format(value);
export const percent = (value) => (Number.isFinite(value) ? PERCENT.format(value) : "—");

// Costs are whole 1e-8 USD in the gateway: summed as integers here, so a total equals the API's.
export const units = (cost) => Math.round(cost * 1e8);
export const fromUnits = (n) => n / 1e8;

export const COLORS = ["#2563eb", "#d97706", "#059669", "#dc2626", "#7c3aed", "#0891b2", "#db2777", "#4b5563"];

export async function api(path, params = {}) {
  const query = new URLSearchParams(Object.entries(params).filter(([, v]) => v !== undefined && v !== ""));
  const url = `/api/${path}${query.toString() ? `?${query}` : ""}`;
  const response = await fetch(url, { credentials: "same-origin", headers: { accept: "application/json" } });
  if (!response.ok) {
    let message = `${response.status}`;
    try {
      const body = await response.json();
      message = `${response.status} ${body.error?.code ?? ""}: ${body.error?.message ?? ""}`;
    } catch { /* not JSON */ }
    const error = new Error(`the admin API answered ${message}`);
    error.status = response.status;
    throw error;
  }
  return response.json();
}

export async function apiText(path) {
  const response = await fetch(`/api/${path}`, { credentials: "same-origin" });
  if (!response.ok) throw new Error(`the admin API answered ${response.status}`);
  return response.text();
}

// --- UTC dates

export const isoDay = (date) => date.toISOString().slice(0, 10);
export const todayUtc = () => isoDay(new Date());
export const monthOf = (day) => day.slice(0, 7);

export function daysBetween(from, to) {
  const days = [];
  for (let d = new Date(`${from}T00:00:00Z`); isoDay(d) <= to && days.length < 1000; d.setUTCDate(d.getUTCDate() + 1)) {
    days.push(isoDay(d));
  }
  return days;
}

export function monthRange(month) {
  const [year, mon] = month.split("-").map(Number);
  const last = new Date(Date.UTC(year, mon, 0)).getUTCDate();
  return [`${month}-01`, `${month}-${String(last).padStart(2, "0")}`];
}

const DAY = /^\d{4}-\d{2}-\d{2}$/;

// The page's date range from its address (?from=&to=), by default this UTC month so far; the form
// in #range submits to the same page.
export function dateRange() {
  const query = new URLSearchParams(location.search);
  const today = todayUtc();
  let to = DAY.test(query.get("to") ?? "") ? query.get("to") : today;
  let from = DAY.test(query.get("from") ?? "") ? query.get("from") : `${monthOf(to)}-01`;
  if (from > to) [from, to] = [to, from];
  const form = document.getElementById("range");
  if (form) {
    form.elements.from.value = from;
    form.elements.to.value = to;
    const keep = form.querySelector("[data-keep]");  // e.g. the app page's app, kept by the presets
    const kept = keep ? query.get(keep.name) : null;
    const presets = form.querySelector(".presets");
    const extra = kept ? `&${encodeURIComponent(keep.name)}=${encodeURIComponent(kept)}` : "";
    const start = (days) => { const d = new Date(`${today}T00:00:00Z`); d.setUTCDate(d.getUTCDate() - days + 1); return isoDay(d); };
    const previous = new Date(`${today.slice(0, 8)}01T00:00:00Z`);
    previous.setUTCMonth(previous.getUTCMonth() - 1);
    const [pf, pt] = monthRange(isoDay(previous).slice(0, 7));
    for (const [label, f, t] of [["This month", `${monthOf(today)}-01`, today], ["Last month", pf, pt],
      ["Last 7 days", start(7), today], ["Last 30 days", start(30), today]]) {
      const a = document.createElement("a");
      a.href = `?from=${f}&to=${t}${extra}`;
      a.textContent = label;
      if (f === from && t === to) a.className = "active";
      presets?.append(a);
    }
  }
  document.querySelectorAll("[data-range]").forEach((el) => { el.textContent = `${from} to ${to} (UTC, inclusive)`; });
  return { from, to, oneMonth: monthOf(from) === monthOf(to) };
}

// --- the page

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null) continue;
    if (name === "text") node.textContent = value;
    else if (name === "class") node.className = value;
    else node.setAttribute(name, value);
  }
  for (const child of children.flat()) node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  return node;
}

export function showError(error) {
  const box = document.getElementById("error");
  box.hidden = false;
  box.textContent = `Could not load this page's figures: ${error.message}`;
}

export function setFigure(id, text, raw) {
  const node = document.getElementById(id);
  node.textContent = text;
  if (raw !== undefined) node.dataset.value = String(raw);
}

// A table of rows; columns: {key, label, format?(value, row), numeric?, link?(row)}.
// Cells keep the API's raw figure in data-value (tests and copy-paste see the same number).
export function table(container, columns, rows, { caption, empty = "No usage in this range.", footer } = {}) {
  const target = typeof container === "string" ? document.getElementById(container) : container;
  target.replaceChildren();
  if (!rows.length) {
    target.append(el("p", { class: "empty", text: empty }));
    return;
  }
  const head = el("tr", {}, columns.map((c) => el("th", { scope: "col", class: c.numeric ? "num" : null, text: c.label })));
  const body = rows.map((row) => el("tr", {}, columns.map((c) => {
    const value = row[c.key];
    const text = c.format ? c.format(value, row) : (value ?? "—");
    const cell = el("td", { class: c.numeric ? "num" : c.wrap ? "wrap" : null, "data-key": c.key,
      "data-value": typeof value === "number" || typeof value === "string" ? String(value) : null });
    const href = c.link ? c.link(row) : null;
    cell.append(href ? el("a", { href, text }) : text);
    if (c.meter && Number.isFinite(value)) {  // a share of a limit, drawn by the browser (no inline style)
      cell.append(el("meter", { min: "0", max: "1", low: "0.7", high: "0.9", optimum: "0", value: String(Math.min(value, 1)) }));
    }
    return cell;
  })));
  const parts = [el("thead", {}, head), el("tbody", {}, body)];
  if (footer) {
    parts.push(el("tfoot", {}, el("tr", {}, columns.map((c) => {
      const value = footer[c.key];
      const text = value === undefined ? "" : (c.format ? c.format(value, footer) : value);
      return el("td", { class: c.numeric ? "num" : null, "data-key": c.key,
        "data-value": value === undefined ? null : String(value), text });
    }))));
  }
  target.append(el("table", {}, caption ? el("caption", { text: caption }) : [], parts));
}

// --- charts (Chart.js, vendored: static/vendor/)

const charts = new Map();

// One colour per bar where a chart has a single series.
export const BAR = { maxBarThickness: 56, borderRadius: 3 };

export function chart(id, config) {
  const canvas = document.getElementById(id);
  charts.get(id)?.destroy();
  const options = config.options ?? {};
  const made = new window.Chart(canvas, {
    ...config,
    options: {
      animation: false, responsive: true, maintainAspectRatio: false,
      ...options,
      plugins: { legend: { position: "bottom" }, ...(options.plugins ?? {}) },
    },
  });
  charts.set(id, made);
  canvas.dataset.rendered = "true";
  return made;
}

export const usdAxis = { ticks: { callback: (value) => usd(value) }, beginAtZero: true };
export const usdTooltip = { callbacks: { label: (ctx) => `${ctx.dataset.label}: ${usd(ctx.parsed.y ?? ctx.parsed.x)}` } };

export function markNav() {
  const page = document.body.dataset.page;
  document.querySelectorAll("nav a[data-page]").forEach((a) => {
    if (a.dataset.page === page) a.setAttribute("aria-current", "page");
  });
}

export function done() {
  document.body.dataset.loaded = "true";
}
