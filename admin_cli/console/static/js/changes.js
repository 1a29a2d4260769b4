// The change log: who changed what, when (the admin API's GET /admin/v1/changes), filtered to the range.
import { api, chart, COLORS, count, dateRange, daysBetween, done, el, markNav, showError, table } from "./common.js";

function summary(change) {
  if (change.before === null || change.before === undefined) return "created";
  if (change.after === null || change.after === undefined) return "removed";
  const before = change.before;
  const after = change.after;
  if (typeof before !== "object" || typeof after !== "object") return "";
  const keys = [...new Set([...Object.keys(before), ...Object.keys(after)])].sort();
  const changed = keys.filter((k) => JSON.stringify(before[k]) !== JSON.stringify(after[k]));
  return changed.length ? `changed: ${changed.join(", ")}` : "";
}

async function main() {
  markNav();
  const range = dateRange();
  const answer = await api("changes", { limit: 1000 });
  const rows = answer.data.filter((c) => c.at.slice(0, 10) >= range.from && c.at.slice(0, 10) <= range.to);
  const perDay = new Map();
  for (const c of rows) perDay.set(c.at.slice(0, 10), (perDay.get(c.at.slice(0, 10)) ?? 0) + 1);
  const days = daysBetween(range.from, range.to).map((day) => ({ day, count: perDay.get(day) ?? 0 }));
  table("changes-day-table", [{ key: "day", label: "Day (UTC)" }, { key: "count", label: "Changes", numeric: true, format: count }],
    days.filter((d) => d.count), { empty: "No changes in this range." });
  chart("changes-chart", {
    type: "bar",
    data: { labels: days.map((d) => d.day), datasets: [{ label: "Changes", data: days.map((d) => d.count), backgroundColor: COLORS[4] }] },
    options: { scales: { y: { beginAtZero: true, ticks: { precision: 0 } } }, plugins: { legend: { display: false } } },
  });
  table("changes-table", [
    { key: "at", label: "At (UTC)", format: (v) => v.replace("T", " ").replace(/(\.\d+)?(Z|\+00:00)$/, "") },
    { key: "principal", label: "Who" }, { key: "action", label: "Action" },
    { key: "target", label: "Target", format: (v) => (typeof v === "string" ? v : JSON.stringify(v)) },
    { key: "summary", label: "What", wrap: true },
  ], rows.map((c) => ({ ...c, summary: summary(c) })), { empty: "No changes in this range." });
  const details = document.getElementById("changes-table");
  if (rows.length) details.append(el("p", { class: "hint", text: `${count(rows.length)} changes; garden-admin changes prints each one's before and after.` }));
  done();
}

main().catch((error) => { showError(error); done(); });
