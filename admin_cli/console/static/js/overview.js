// Overview: the range's spend by business unit and by app against budgets, the daily trend, requests
// and error rate. Each figure is one GET /admin/v1/usage (through the console), rendered.
import {
  api, BAR, chart, COLORS, count, dateRange, daysBetween, done, fromUnits, markNav, percent, setFigure, showError,
  table, units, usd, usdAxis, usdCents, usdTooltip,
} from "./common.js";

const usdCol = (key, label) => ({ key, label, numeric: true, format: (v) => (v === null || v === undefined ? "—" : usd(v)) });
const countCol = (key, label) => ({ key, label, numeric: true, format: (v) => count(v) });
const pctCol = (key, label) => ({ key, label, numeric: true, meter: true, format: (v) => percent(v) });

function errorRate(row) {
  const all = row.requests + row.errors + row.rejected;
  return all ? row.errors / all : NaN;
}

async function main() {
  markNav();
  const range = dateRange();
  const q = { from: range.from, to: range.to };
  const [total, byBu, byApp, byDay, units_, apps] = await Promise.all([
    api("usage", q), api("usage", { ...q, group_by: "business_unit" }), api("usage", { ...q, group_by: "app,business_unit" }),
    api("usage", { ...q, group_by: "day" }), api("business-units"), api("apps"),
  ]);

  const sum = total.data[0] ?? { requests: 0, errors: 0, rejected: 0, cost_usd: 0 };
  setFigure("total-spend", usd(sum.cost_usd), sum.cost_usd);
  setFigure("total-spend-sub", `${usdCents(sum.cost_usd)} to the cent · ${range.from} to ${range.to}`);
  setFigure("total-requests", count(sum.requests), sum.requests);
  setFigure("total-requests-sub", `${count(sum.requests + sum.errors + sum.rejected)} in all`);
  setFigure("error-rate", percent(errorRate(sum)), errorRate(sum));
  setFigure("error-rate-sub", `${count(sum.errors)} errors (not 429)`);
  setFigure("rejected", count(sum.rejected), sum.rejected);
  setFigure("rejected-sub", "refused by a limit");

  // Business units: every BU with usage or a budget.
  const budgets = new Map(units_.data.map((b) => [b.id, b]));
  const buRows = new Map(byBu.data.map((r) => [r.business_unit, r]));
  const bus = [...new Set([...buRows.keys(), ...budgets.keys()])].sort();
  const buTable = bus.map((bu) => {
    const r = buRows.get(bu) ?? { requests: 0, errors: 0, rejected: 0, cost_usd: 0 };
    const budget = budgets.get(bu)?.usd_per_month ?? null;
    return { business_unit: bu, cost_usd: r.cost_usd, budget, used: range.oneMonth && budget ? r.cost_usd / budget : NaN,
      requests: r.requests, errors: r.errors, rejected: r.rejected };
  });
  table("bu-table", [
    { key: "business_unit", label: "Business unit" }, usdCol("cost_usd", "Spend"), usdCol("budget", "Budget / month"),
    pctCol("used", "Used"), countCol("requests", "Requests"), countCol("errors", "Errors"), countCol("rejected", "Rejected"),
  ], buTable, { empty: "No business units yet.", footer: { business_unit: "Total", cost_usd: sum.cost_usd,
    requests: sum.requests, errors: sum.errors, rejected: sum.rejected } });
  chart("bu-chart", {
    type: "bar",
    data: { labels: buTable.map((r) => r.business_unit), datasets: [
      { label: "Spend (USD)", data: buTable.map((r) => r.cost_usd), backgroundColor: COLORS[0], ...BAR },
    ] },
    options: { scales: { y: usdAxis }, plugins: { tooltip: usdTooltip, legend: { display: false } } },
  });

  // Apps: every app with usage, and every enabled app of the registry.
  const appInfo = new Map(apps.data.map((a) => [a.id, a]));
  const appRows = new Map();
  for (const r of byApp.data) {
    const row = appRows.get(r.app_id) ?? { app_id: r.app_id, business_unit: r.business_unit, requests: 0, errors: 0, rejected: 0, units: 0 };
    row.requests += r.requests; row.errors += r.errors; row.rejected += r.rejected; row.units += units(r.cost_usd);
    appRows.set(r.app_id, row);
  }
  for (const a of apps.data) {
    if (!appRows.has(a.id) && !a.disabled) {
      appRows.set(a.id, { app_id: a.id, business_unit: a.business_unit, requests: 0, errors: 0, rejected: 0, units: 0 });
    }
  }
  const appTable = [...appRows.values()].sort((a, b) => b.units - a.units || a.app_id.localeCompare(b.app_id)).map((r) => {
    const quota = appInfo.get(r.app_id)?.quotas?.usd_per_month ?? null;
    const cost = fromUnits(r.units);
    return { ...r, cost_usd: cost, quota, used: range.oneMonth && quota ? cost / quota : NaN };
  });
  table("app-table", [
    { key: "app_id", label: "App", link: (r) => (appInfo.has(r.app_id) ? `/app.html?id=${encodeURIComponent(r.app_id)}&from=${range.from}&to=${range.to}` : null) },
    { key: "business_unit", label: "Business unit" }, usdCol("cost_usd", "Spend"), usdCol("quota", "USD quota / month"),
    pctCol("used", "Used"), countCol("requests", "Requests"), countCol("errors", "Errors"), countCol("rejected", "Rejected"),
  ], appTable, { empty: "No apps yet." });
  chart("app-chart", {
    type: "bar",
    data: { labels: appTable.map((r) => r.app_id), datasets: [
      { label: "Spend (USD)", data: appTable.map((r) => r.cost_usd), backgroundColor: COLORS[1], ...BAR },
    ] },
    options: { indexAxis: "y", scales: { x: usdAxis }, plugins: { tooltip: usdTooltip, legend: { display: false } } },
  });

  // Daily: every day of the range, zero where nothing happened.
  const perDay = new Map(byDay.data.map((r) => [r.day, r]));
  const days = daysBetween(range.from, range.to).map((day) => {
    const r = perDay.get(day) ?? { requests: 0, errors: 0, rejected: 0, cost_usd: 0 };
    return { day, requests: r.requests, errors: r.errors, rejected: r.rejected, rate: errorRate(r), cost_usd: r.cost_usd };
  });
  table("daily-table", [
    { key: "day", label: "Day (UTC)" }, usdCol("cost_usd", "Spend"), countCol("requests", "Requests"),
    countCol("errors", "Errors"), countCol("rejected", "Rejected"), pctCol("rate", "Error rate"),
  ], [...days].reverse());  // the table newest first, the chart left to right
  chart("daily-chart", {
    data: { labels: days.map((d) => d.day), datasets: [
      { type: "line", label: "Spend (USD)", data: days.map((d) => d.cost_usd), borderColor: COLORS[0], backgroundColor: COLORS[0], yAxisID: "usd", tension: 0.2 },
      { type: "bar", label: "Requests", data: days.map((d) => d.requests), backgroundColor: "#a7f3d0", yAxisID: "n" },
      { type: "bar", label: "Errors", data: days.map((d) => d.errors), backgroundColor: COLORS[3], yAxisID: "n" },
      { type: "bar", label: "Rejected", data: days.map((d) => d.rejected), backgroundColor: COLORS[1], yAxisID: "n" },
    ] },
    options: { scales: { usd: { ...usdAxis, position: "left" }, n: { beginAtZero: true, position: "right", grid: { drawOnChartArea: false } } } },
  });
  done();
}

main().catch((error) => { showError(error); done(); });
