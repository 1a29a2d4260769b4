// Chargeback: a month (the current one to date, or a closed one), each business unit's totals against
// its budget, and its CSV (the file chalicelib/chargeback.py writes) to see and to download.
import {
  api, apiText, BAR, chart, COLORS, count, done, el, fromUnits, markNav, monthRange, percent, setFigure, showError, table,
  todayUtc, units, usd, usdAxis, usdTooltip,
} from "./common.js";

function months() {
  const list = [];
  const d = new Date(`${todayUtc().slice(0, 7)}-01T00:00:00Z`);
  for (let i = 0; i < 13; i += 1) {
    list.push(d.toISOString().slice(0, 7));
    d.setUTCMonth(d.getUTCMonth() - 1);
  }
  return list;
}

function parseCsv(text) {
  const lines = text.trim().split(/\r?\n/).map((line) => line.split(","));
  return { header: lines[0] ?? [], rows: lines.slice(1) };
}

async function main() {
  markNav();
  const choices = months();
  const asked = new URLSearchParams(location.search).get("month");
  const month = choices.includes(asked) ? asked : choices[0];
  const current = month === choices[0];
  const select = document.getElementById("month");
  for (const m of choices) select.append(el("option", { value: m, text: m === choices[0] ? `${m} (to date)` : m }));
  select.value = month;
  const [from, last] = monthRange(month);
  const to = current ? todayUtc() : last;
  document.getElementById("month-label").textContent = `${month}: ${from} to ${to} (UTC)${current ? ", to date" : ", closed"}`;

  const [byBu, budgets] = await Promise.all([api("usage", { from, to: last, group_by: "business_unit" }), api("business-units")]);
  const budget = new Map(budgets.data.map((b) => [b.id, b]));
  const rows = byBu.data.map((r) => ({
    business_unit: r.business_unit, requests: r.requests, prompt_tokens: r.prompt_tokens, completion_tokens: r.completion_tokens,
    tokens: r.prompt_tokens + r.completion_tokens, cost_usd: r.cost_usd, budget: budget.get(r.business_unit)?.usd_per_month ?? null,
  }));
  for (const r of rows) r.used = r.budget ? r.cost_usd / r.budget : NaN;
  const totalUnits = rows.reduce((s, r) => s + units(r.cost_usd), 0);
  setFigure("cb-total", usd(fromUnits(totalUnits)), fromUnits(totalUnits));
  setFigure("cb-total-sub", current ? "to date" : "closed month");
  setFigure("cb-tokens", count(rows.reduce((s, r) => s + r.tokens, 0)));
  setFigure("cb-requests", count(rows.reduce((s, r) => s + r.requests, 0)));
  setFigure("cb-units", count(rows.length));
  table("cb-table", [
    { key: "business_unit", label: "Business unit" },
    { key: "cost_usd", label: "Spend", numeric: true, format: (v) => usd(v) },
    { key: "budget", label: "Budget / month", numeric: true, format: (v) => (v === null ? "—" : usd(v)) },
    { key: "used", label: "Used", numeric: true, meter: true, format: (v) => percent(v) },
    { key: "requests", label: "Requests", numeric: true, format: count },
    { key: "tokens", label: "Tokens", numeric: true, format: count },
    { key: "csv", label: "CSV", link: (r) => `/api/chargeback/${month}/${encodeURIComponent(r.business_unit)}.csv`, format: () => "download" },
  ], rows, { empty: "No usage in this month." });
  chart("cb-chart", {
    type: "bar",
    data: { labels: rows.map((r) => r.business_unit), datasets: [
      { label: "Spend (USD)", data: rows.map((r) => r.cost_usd), backgroundColor: COLORS[0], ...BAR },
    ] },
    options: { scales: { y: usdAxis }, plugins: { tooltip: usdTooltip, legend: { display: false } } },
  });

  const files = document.getElementById("cb-files");
  files.replaceChildren();
  for (const r of rows) {
    const path = `chargeback/${month}/${encodeURIComponent(r.business_unit)}.csv`;
    const csv = parseCsv(await apiText(path));
    const box = el("div", { class: "csv", "data-business-unit": r.business_unit });
    box.append(el("h3", {}, `${r.business_unit}.csv `, el("a", { href: `/api/${path}`, download: `chargeback-${month}-${r.business_unit}.csv`, class: "button", text: "Download CSV" })));
    const holder = el("div", { class: "table" });
    box.append(holder);
    files.append(box);
    table(holder, csv.header.map((name, i) => ({ key: i, label: name, numeric: i >= 2 })), csv.rows, { empty: "No rows." });
  }
  if (!rows.length) files.append(el("p", { class: "empty", text: "No business unit used the gateway in this month." }));
  done();
}

main().catch((error) => { showError(error); done(); });
