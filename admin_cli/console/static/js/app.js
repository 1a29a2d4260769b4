// An app's page: its quotas (limit beside what is used), usage by model, rejections by code, PII
// entities by type and guardrail interventions (counts only, never content).
import {
  api, BAR, chart, COLORS, count, dateRange, done, el, markNav, percent, showError, table, usd,
} from "./common.js";

const WINDOWS = { minute: "this minute", day: "today", month: "this month" };
const LABELS = {
  requests_per_minute: "Requests per minute", tokens_per_minute: "Tokens per minute", tokens_per_day: "Tokens per day",
  tokens_per_month: "Tokens per month", usd_per_month: "USD per month",
};

// "quotas.models.local-echo.tokens_per_day" -> "local-echo: Tokens per day"; a BU budget is named so.
function quotaLabel(row) {
  const name = row.quota.split(".").pop();
  const label = LABELS[name] ?? name;
  if (row.scope === "business_unit") return `Business unit ${row.quota.split(".")[1]}: ${label}`;
  return row.model ? `${row.model}: ${label}` : label;
}

const fmt = (kind) => (v) => (v === null || v === undefined ? "—" : kind === "usd" ? usd(v) : count(v));
const countCol = (key, label) => ({ key, label, numeric: true, format: (v) => count(v) });

async function pickApp(apps, current) {
  const select = document.getElementById("app-select");
  for (const a of apps) {
    select.append(el("option", { value: a.id, text: a.disabled ? `${a.id} (disabled)` : a.id, selected: a.id === current ? "" : null }));
  }
  select.value = current;
}

// Each quota's limit beside what is used of it now (GET /admin/v1/apps/{id}/quotas: the limits
// ledger's current windows).
async function quotas(app) {
  const answer = await api(`apps/${encodeURIComponent(app.id)}/quotas`);
  const rows = answer.data.map((r) => ({
    ...r, label: quotaLabel(r), window_label: `${WINDOWS[r.window] ?? r.window} (${r.period})`,
    share: r.limit ? (r.used + r.held) / r.limit : NaN,
  }));
  document.getElementById("quota-at").textContent = `as of ${answer.at.replace("T", " ").replace("Z", "")} UTC`;
  const value = (v, r) => fmt(r.unit === "usd" ? "usd" : "count")(v);
  table("quota-table", [
    { key: "label", label: "Quota" }, { key: "window_label", label: "Window (UTC)" },
    { key: "limit", label: "Limit", numeric: true, format: value },
    { key: "used", label: "Used", numeric: true, format: value },
    { key: "held", label: "Held", numeric: true, format: value },
    { key: "remaining", label: "Remaining", numeric: true, format: value },
    { key: "share", label: "Used %", numeric: true, meter: true, format: (v) => percent(v) },
  ], rows, { empty: "This app has no quotas and its business unit no budget." });
  chart("quota-chart", {
    type: "bar",
    data: { labels: rows.map((r) => r.label), datasets: [
      { label: "Used and held (% of limit)", data: rows.map((r) => (Number.isFinite(r.share) ? Math.round(r.share * 1000) / 10 : 0)),
        backgroundColor: rows.map((r) => (r.share >= 0.9 ? COLORS[3] : r.share >= 0.7 ? COLORS[1] : COLORS[2])), ...BAR },
    ] },
    options: { indexAxis: "y", scales: { x: { min: 0, suggestedMax: 100, ticks: { callback: (v) => `${v}%` } } },
      plugins: { legend: { display: false } } },
  });
}

async function models(app, range) {
  const answer = await api("usage", { from: range.from, to: range.to, group_by: "app,model" });
  const rows = answer.data.filter((r) => r.app_id === app.id).sort((a, b) => b.cost_usd - a.cost_usd || a.model.localeCompare(b.model));
  table("model-table", [
    { key: "model", label: "Model" }, { key: "cost_usd", label: "Spend", numeric: true, format: (v) => usd(v) },
    countCol("requests", "Requests"), countCol("prompt_tokens", "Prompt tokens"), countCol("completion_tokens", "Completion tokens"),
    countCol("cached_tokens", "Cached tokens"), countCol("errors", "Errors"), countCol("rejected", "Rejected"),
  ], rows);
  document.getElementById("model-chart").closest(".chart").hidden = !rows.length;
  if (!rows.length) return;
  chart("model-chart", {
    type: "bar",
    data: { labels: rows.map((r) => r.model), datasets: [
      { label: "Prompt tokens", data: rows.map((r) => r.prompt_tokens), backgroundColor: COLORS[0], stack: "t", ...BAR },
      { label: "Completion tokens", data: rows.map((r) => r.completion_tokens), backgroundColor: COLORS[2], stack: "t", ...BAR },
    ] },
    options: { scales: { y: { beginAtZero: true, stacked: true }, x: { stacked: true } } },
  });
}

function counts(id, rows, labelKey, label, empty) {
  table(`${id}-table`, [{ key: labelKey, label }, countCol("count", "Count")], rows, { empty });
  document.getElementById(`${id}-chart`).closest(".chart").hidden = !rows.length;
  if (!rows.length) return;
  chart(`${id}-chart`, {
    type: "bar",
    data: { labels: rows.map((r) => r[labelKey]), datasets: [{ label: "Count", data: rows.map((r) => r.count), backgroundColor: COLORS[4], ...BAR }] },
    options: { indexAxis: "y", scales: { x: { beginAtZero: true, ticks: { precision: 0 } } }, plugins: { legend: { display: false } } },
  });
}

// Rejections and errors by code, PII entities by type, guardrail interventions: counts only
// (GET /admin/v1/activity, grouped by app, filtered to this one).
async function activity(app, range) {
  const answer = await api("activity", { from: range.from, to: range.to, group_by: "app" });
  const mine = answer.data.filter((r) => r.app_id === app.id);
  const of = (...kinds) => mine.filter((r) => kinds.includes(r.kind)).sort((a, b) => b.count - a.count || a.code.localeCompare(b.code));
  const refused = of("rejected", "error").map((r) => ({ ...r, label: `${r.code} (${r.kind === "rejected" ? "429" : "error"})` }));
  counts("rejection", refused, "label", "Code", "No request of this app was refused in this range.");
  counts("pii", of("pii"), "code", "Entity type", "No PII entity was detected in this range.");
  counts("guardrail", of("guardrail"), "code", "Intervention", "No guardrail intervention in this range.");
}

async function main() {
  markNav();
  const range = dateRange();
  const apps = (await api("apps")).data;
  const wanted = new URLSearchParams(location.search).get("id") ?? apps.find((a) => !a.disabled)?.id ?? apps[0]?.id;
  await pickApp(apps, wanted);
  if (!wanted) throw new Error("no app is registered yet");
  const app = await api(`apps/${encodeURIComponent(wanted)}`);
  document.getElementById("app-name").textContent = app.id;
  document.title = `${app.id} · Execution Garden console`;
  document.getElementById("app-facts").replaceChildren(
    el("span", {}, "Business unit ", el("strong", { text: app.business_unit })),
    el("span", {}, "Models ", el("strong", { text: app.allowed_models.join(", ") })),
    el("span", {}, "Geography ", el("strong", { text: app.geography ?? "any" })),
    el("span", { class: app.disabled ? "badge off" : "badge on", text: app.disabled ? "disabled" : "enabled" }),
  );
  await Promise.all([quotas(app), models(app, range), activity(app, range)]);
  done();
}

main().catch((error) => { showError(error); done(); });
