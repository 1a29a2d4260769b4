// An app's page: its quotas (limit beside what is used), usage by model, rejections by code, PII
// entities by type and guardrail interventions (counts only, never content).
import {
  api, BAR, chart, COLORS, count, dateRange, done, el, markNav, monthOf, percent, showError, table, todayUtc, usd,
  usdAxis, usdTooltip,
} from "./common.js";

const QUOTAS = [
  ["requests_per_minute", "Requests per minute", "this UTC minute", "count"],
  ["tokens_per_minute", "Tokens per minute", "this UTC minute", "count"],
  ["tokens_per_day", "Tokens per day", "today (UTC)", "count"],
  ["tokens_per_month", "Tokens per month", "this UTC month", "count"],
  ["usd_per_month", "USD per month", "this UTC month", "usd"],
];

const fmt = (kind) => (v) => (v === null || v === undefined ? "—" : kind === "usd" ? usd(v) : count(v));
const countCol = (key, label) => ({ key, label, numeric: true, format: (v) => count(v) });

async function pickApp(apps, current) {
  const select = document.getElementById("app-select");
  for (const a of apps) {
    select.append(el("option", { value: a.id, text: a.disabled ? `${a.id} (disabled)` : a.id, selected: a.id === current ? "" : null }));
  }
  select.value = current;
}

// What is used of each quota, from the usage aggregates: the day's and the month's tokens and cost.
async function quotaUse(app) {
  const today = todayUtc();
  const month = `${monthOf(today)}-01`;
  const [day, mon] = await Promise.all([
    api("usage", { from: today, to: today, group_by: "app" }), api("usage", { from: month, to: today, group_by: "app" }),
  ]);
  const of = (answer) => answer.data.find((r) => r.app_id === app.id) ?? { prompt_tokens: 0, completion_tokens: 0, cost_usd: 0 };
  const d = of(day);
  const m = of(mon);
  return {
    tokens_per_day: d.prompt_tokens + d.completion_tokens,
    tokens_per_month: m.prompt_tokens + m.completion_tokens,
    usd_per_month: m.cost_usd,
  };
}

function quotas(app, used) {
  const rows = QUOTAS.filter(([key]) => app.quotas?.[key] !== undefined).map(([key, label, window, kind]) => {
    const limit = app.quotas[key];
    const value = used[key];
    return { quota: label, window, limit, used: value ?? null, share: value === undefined ? NaN : value / limit, kind };
  });
  table("quota-table", [
    { key: "quota", label: "Quota" }, { key: "window", label: "Window" },
    { key: "limit", label: "Limit", numeric: true, format: (v, r) => fmt(r.kind)(v) },
    { key: "used", label: "Used", numeric: true, format: (v, r) => fmt(r.kind)(v) },
    { key: "share", label: "Used %", numeric: true, meter: true, format: (v) => percent(v) },
  ], rows, { empty: "This app has no quotas." });
  chart("quota-chart", {
    type: "bar",
    data: { labels: rows.map((r) => r.quota), datasets: [
      { label: "Used (% of limit)", data: rows.map((r) => (Number.isFinite(r.share) ? Math.round(r.share * 1000) / 10 : 0)),
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
  chart(`${id}-chart`, {
    type: "bar",
    data: { labels: rows.map((r) => r[labelKey]), datasets: [{ label: "Count", data: rows.map((r) => r.count), backgroundColor: COLORS[4], ...BAR }] },
    options: { indexAxis: "y", scales: { x: { beginAtZero: true, ticks: { precision: 0 } } }, plugins: { legend: { display: false } } },
  });
}

function unavailable(id, why) {
  document.getElementById(`${id}-table`).replaceChildren(el("p", { class: "empty", text: why }));
  document.getElementById(`${id}-chart`).closest(".chart").hidden = true;
}

async function activity(app, range) {
  const why = "The gateway's admin API does not report this yet.";
  for (const id of ["rejection", "pii", "guardrail"]) unavailable(id, why);
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
  await Promise.all([quotaUse(app).then((used) => quotas(app, used)), models(app, range), activity(app, range)]);
  done();
}

main().catch((error) => { showError(error); done(); });
