// Chargeback: a month (the current one to date, or a closed one), each business unit's totals against
// its budget (GET /admin/v1/chargeback/{month}, as the monthly chargeback computes them), and its CSV
// (GET /admin/v1/chargeback/{month}/{bu}: the file the chargeback writes) to see and to download.
import {
  api, apiText, BAR, chart, COLORS, count, done, el, markNav, percent, setFigure, showError, table, usd, usdAxis,
  usdExact, usdTooltip,
} from "./common.js";

function parseCsv(text) {
  const lines = text.trim().split(/\r?\n/).map((line) => line.split(","));
  return { header: lines[0] ?? [], rows: lines.slice(1) };
}

// The admin API lists the current month and the closed months with usage; every closed month of
// the aggregates' 13 kept is offered (one with no usage shows its budgets and zeros).
function withClosedMonths(listed) {
  const byMonth = new Map(listed.map((m) => [m.month, m]));
  const current = listed.find((m) => !m.closed) ?? listed[0];
  const all = [current];
  const d = new Date(`${current.month}-01T00:00:00Z`);
  for (let i = 0; i < 12; i += 1) {
    d.setUTCMonth(d.getUTCMonth() - 1);
    const month = d.toISOString().slice(0, 7);
    all.push(byMonth.get(month) ?? { month, closed: true, cost_usd: null });
  }
  return all;
}

const csvPath = (month, bu) => `chargeback/${month}/${encodeURIComponent(bu)}.csv`;

async function main() {
  markNav();
  const months = withClosedMonths((await api("chargeback")).data);
  const asked = new URLSearchParams(location.search).get("month");
  const month = months.some((m) => m.month === asked) ? asked : months[0].month;
  const select = document.getElementById("month");
  for (const m of months) {
    const text = !m.closed ? `${m.month} (to date)` : m.cost_usd ? `${m.month} (${usdExact(m.cost_usd)})` : m.month;
    select.append(el("option", { value: m.month, text }));
  }
  select.value = month;

  const summary = await api(`chargeback/${month}`);
  document.getElementById("month-label").textContent =
    `${month}: ${summary.from} to ${summary.to} (UTC)${summary.closed ? ", closed" : ", to date"}`;
  setFigure("cb-total", usdExact(summary.total.cost_usd), summary.total.cost_usd);
  setFigure("cb-total-sub", `${summary.closed ? "closed month" : "to date"}; to invoice ${usdExact(summary.total.cost_usd_cents)}`);
  setFigure("cb-tokens", count(summary.total.tokens), summary.total.tokens);
  setFigure("cb-requests", count(summary.total.requests), summary.total.requests);
  setFigure("cb-units", count(summary.business_units.length), summary.business_units.length);

  const rows = summary.business_units.map((b) => ({
    ...b, budget_usd: b.budget?.usd_per_month ?? null,
    used: b.budget?.usd_per_month ? Number(b.cost_usd) / b.budget.usd_per_month : NaN,
  }));
  table("cb-table", [
    { key: "business_unit", label: "Business unit" },
    { key: "cost_usd", label: "Spend", numeric: true, format: (v) => usdExact(v) },
    { key: "cost_usd_cents", label: "To invoice", numeric: true, format: (v) => usdExact(v) },
    { key: "budget_usd", label: "Budget / month", numeric: true, format: (v) => (v === null ? "—" : usd(v)) },
    { key: "used", label: "Used", numeric: true, meter: true, format: (v) => percent(v) },
    { key: "requests", label: "Requests", numeric: true, format: count },
    { key: "tokens", label: "Tokens", numeric: true, format: count },
    { key: "csv", label: "File", link: (r) => `/api/${csvPath(month, r.business_unit)}`, format: () => "CSV" },
  ], rows, { empty: "No business unit used the gateway or has a budget in this month.",
    footer: { business_unit: "Total", cost_usd: summary.total.cost_usd, cost_usd_cents: summary.total.cost_usd_cents,
      requests: summary.total.requests, tokens: summary.total.tokens } });
  chart("cb-chart", {
    type: "bar",
    data: { labels: rows.map((r) => r.business_unit), datasets: [
      { label: "Spend (USD)", data: rows.map((r) => Number(r.cost_usd)), backgroundColor: COLORS[0], ...BAR },
    ] },
    options: { scales: { y: usdAxis }, plugins: { tooltip: usdTooltip, legend: { display: false } } },
  });

  const files = document.getElementById("cb-files");
  files.replaceChildren();
  const texts = await Promise.all(rows.map((r) => apiText(csvPath(month, r.business_unit))));
  rows.forEach((r, i) => {
    const csv = parseCsv(texts[i]);
    const box = el("div", { class: "csv", "data-business-unit": r.business_unit });
    box.append(el("h3", {}, `chargeback-${month}-${r.business_unit}.csv `,
      el("a", { href: `/api/${csvPath(month, r.business_unit)}`, download: `chargeback-${month}-${r.business_unit}.csv`,
        class: "button", text: "Download CSV" })));
    const holder = el("div", { class: "table" });
    box.append(holder);
    files.append(box);
    table(holder, csv.header.map((name, n) => ({ key: n, label: name, numeric: n >= 2 })), csv.rows,
      { empty: "No app used tokens or money in this month." });
  });
  if (!rows.length) files.append(el("p", { class: "empty", text: "No business unit in this month." }));
  done();
}

main().catch((error) => { showError(error); done(); });
