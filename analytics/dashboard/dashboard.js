// The marketing dashboard: reads /api/analytics/* with the token kept in sessionStorage.
"use strict";

const TOKEN_KEY = "invite-analytics-token";
const DIMENSIONS = [
  ["partner", "Partners"], ["campaign", "Campaigns"], ["country", "Countries"],
  ["referrer", "Referrers"], ["device", "Devices"], ["os", "Operating systems"],
  ["browser", "Browsers"],
];
const CARDS = [
  ["clicks", "Clicks"], ["humanClicks", "People"], ["botClicks", "Bots"],
  ["uniqueVisitors", "Unique visitors"], ["registrations", "Registrations"],
  ["conversionRate", "Registrations per visitor"], ["suspendedClicks", "Suspended partner"],
  ["orphanClicks", "Orphan visits"], ["unresolvedClicks", "Unresolved"],
];
// The funnel events' figures: amounts arrive as decimal strings (exact), shown as they are.
const MONEY = [
  ["accounts", "Accounts opened"], ["kycApproved", "KYC approved"],
  ["firstDeposits", "First deposits"], ["firstDepositAmount", "First-deposit amount"],
  ["depositors", "Depositors"], ["depositAmount", "Deposits"],
  ["withdrawalAmount", "Withdrawals"], ["activeTraders", "Active traders"], ["lots", "Lots"],
  ["brokerRevenue", "Broker revenue"], ["commissions", "Commissions"],
  ["unattributedEvents", "Events without a registration"],
];
const STEP_NAMES = { visitors: "Visitors", registrations: "Registrations", kyc: "KYC approved",
  ftd: "First deposit", active: "Traded" };
const SVG = "http://www.w3.org/2000/svg";

const $ = (id) => document.getElementById(id);

function element(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined) node.textContent = text;
  if (className) node.className = className;
  return node;
}

function svg(tag, attributes) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, String(value));
  return node;
}

function isoDay(date) {
  return date.toISOString().slice(0, 10);
}

function formatted(value, key) {
  if (value === null || value === undefined) return "—";
  if (typeof value === "string") return value;  // exact decimals from the API
  if (key === "conversionRate") return (value * 100).toFixed(1) + " %";
  return value.toLocaleString();
}

function query() {
  const params = new URLSearchParams({ from: $("from").value, to: $("to").value });
  const partnerId = $("partnerId").value.trim();
  const campaign = $("campaign").value.trim();
  if (partnerId) params.set("partnerId", partnerId);
  if (campaign) params.set("campaign", campaign);
  params.set("includeDownline", $("includeDownline").checked ? "true" : "false");
  return params;
}

async function call(path, params) {
  const response = await fetch(`${path}?${params}`, {
    headers: { Authorization: `Bearer ${$("token").value.trim()}` },
    cache: "no-store",
  });
  if (!response.ok) {
    let message = `${response.status} ${response.statusText}`;
    try {
      const body = await response.json();
      if (body.error) message = `${response.status}: ${body.error.message}`;
    } catch (_) { /* not JSON: keep the status line */ }
    throw new Error(message);
  }
  return response;
}

function status(text, isError) {
  $("status").textContent = text;
  $("status").className = isError ? "error" : "";
}

function showCards(summary) {
  const cards = $("cards");
  cards.replaceChildren();
  for (const [key, label] of CARDS) {
    const card = element("div", undefined, "card");
    card.append(element("div", formatted(summary[key], key), "value"), element("div", label, "label"));
    cards.append(card);
  }
}

function showMoney(summary) {
  const money = $("money");
  money.replaceChildren();
  for (const [key, label] of MONEY) {
    if (!(key in summary)) continue;  // the admin's own figures, absent for a partner
    const card = element("div", undefined, "card");
    card.append(element("div", formatted(summary[key], key), "value"), element("div", label, "label"));
    money.append(card);
  }
}

function showFunnel(funnel) {
  const most = Math.max(1, ...funnel.steps.map((s) => s.count));
  const rows = funnel.steps.map((step) => {
    const row = element("div", undefined, "step");
    const bar = element("div", undefined, "bar");
    bar.style.width = `${Math.max(1, (step.count / most) * 100)}%`;
    const rate = step.rate === null ? "" : ` · ${(step.rate * 100).toFixed(1)} % of the step before`;
    row.append(element("div", STEP_NAMES[step.step] || step.step, "name"), bar,
               element("div", `${step.count.toLocaleString()}${rate}`, "count"));
    return row;
  });
  $("funnel").replaceChildren(...rows);
}

function cohort() {
  const checked = document.querySelector('input[name="cohort"]:checked');
  return checked ? checked.value : "clicks";
}

function showChart(points) {
  const width = 900, height = 220, left = 44, right = 36, top = 10, bottom = 24;
  const chart = svg("svg", { viewBox: `0 0 ${width} ${height}`, role: "img",
    "aria-label": "clicks per day, people and bots, with registrations" });
  const most = Math.max(1, ...points.map((p) => p.clicks));
  const mostRegistrations = Math.max(1, ...points.map((p) => p.registrations));
  const plotHeight = height - top - bottom;
  const step = (width - left - right) / Math.max(points.length, 1);
  const y = (value, max) => top + plotHeight - (value / max) * plotHeight;
  for (const fraction of [0, 0.5, 1]) {
    const at = y(most * fraction, most);
    chart.append(svg("line", { x1: left, x2: width - right, y1: at, y2: at, class: "grid" }));
    const label = svg("text", { x: left - 4, y: at + 3, "text-anchor": "end", class: "axis" });
    label.textContent = Math.round(most * fraction).toLocaleString();
    chart.append(label);
  }
  const line = [];
  points.forEach((point, index) => {
    const x = left + index * step;
    const barWidth = Math.max(step - 2, 1);
    const humanTop = y(point.humanClicks, most);
    const botTop = y(point.clicks, most);
    const title = svg("title", {});
    title.textContent = `${point.start.slice(0, 10)}: ${point.humanClicks} people, ` +
      `${point.botClicks} bots, ${point.uniqueVisitors} visitors, ${point.registrations} registrations`;
    const group = svg("g", {});
    group.append(title,
      svg("rect", { x, y: humanTop, width: barWidth, height: top + plotHeight - humanTop, class: "human" }),
      svg("rect", { x, y: botTop, width: barWidth, height: humanTop - botTop, class: "bot" }));
    chart.append(group);
    line.push(`${x + barWidth / 2},${y(point.registrations, mostRegistrations)}`);
    if (points.length <= 16 || index % Math.ceil(points.length / 8) === 0) {
      const day = svg("text", { x: x + barWidth / 2, y: height - 8, "text-anchor": "middle", class: "axis" });
      day.textContent = point.start.slice(5, 10);
      chart.append(day);
    }
  });
  chart.append(svg("polyline", { points: line.join(" "), class: "reg" }));
  const registrationsAxis = svg("text", { x: width - right + 4, y: top + 8, class: "axis" });
  registrationsAxis.textContent = `${mostRegistrations} reg.`;
  chart.append(registrationsAxis);
  $("chart").replaceChildren(chart);
}

function breakdownTable(caption, rows) {
  const table = element("table");
  table.append(element("caption", caption));
  const head = element("tr");
  const columns = ["humanClicks", "botClicks", "uniqueVisitors", "registrations", "firstDeposits",
    "depositAmount", "lots"];
  for (const name of ["", "people", "bots", "visitors", "reg.", "FTD", "deposits", "lots"]) {
    head.append(element("th", name));
  }
  table.append(head);
  for (const row of rows) {
    const tr = element("tr");
    tr.append(row.key ? element("td", row.key) : element("td", "(none)", "none"));
    for (const key of columns) {
      tr.append(element("td", formatted(row[key], key)));
    }
    table.append(tr);
  }
  if (!rows.length) {
    const empty = element("tr");
    empty.append(element("td", "no clicks", "none"));
    table.append(empty);
  }
  return table;
}

async function refresh(event) {
  if (event) event.preventDefault();
  sessionStorage.setItem(TOKEN_KEY, $("token").value.trim());
  const params = query();
  status("Loading…");
  try {
    const series = new URLSearchParams(params);
    series.set("interval", "day");
    const funnelParams = new URLSearchParams(params);
    funnelParams.set("cohort", cohort());
    const [summary, timeseries, funnel, ...breakdowns] = await Promise.all([
      call("/api/analytics/summary", params).then((r) => r.json()),
      call("/api/analytics/timeseries", series).then((r) => r.json()),
      call("/api/analytics/funnel", funnelParams).then((r) => r.json()),
      ...DIMENSIONS.map(([by]) => {
        const top = new URLSearchParams(params);
        top.set("by", by);
        top.set("limit", "20");
        return call("/api/analytics/breakdown", top).then((r) => r.json());
      }),
    ]);
    showCards(summary);
    showMoney(summary);
    showFunnel(funnel);
    showChart(timeseries.points);
    $("breakdowns").replaceChildren(
      ...breakdowns.map((result, i) => breakdownTable(DIMENSIONS[i][1], result.rows)));
    const who = summary.filter.partnerId ? `partner ${summary.filter.partnerId}` : "all partners";
    status(`${who}, ${summary.filter.from.slice(0, 10)} to ${summary.filter.to.slice(0, 10)} (UTC, end exclusive)`);
  } catch (error) {
    status(error.message, true);
  }
}

async function downloadCsv() {
  status("Preparing the CSV…");
  try {
    const response = await call("/api/analytics/clicks.csv", query());
    const disposition = response.headers.get("Content-Disposition") || "";
    const name = (disposition.match(/filename="([^"]+)"/) || [null, "clicks.csv"])[1];
    const link = element("a");
    link.href = URL.createObjectURL(await response.blob());
    link.download = name;
    link.click();
    URL.revokeObjectURL(link.href);
    status(`Downloaded ${name}`);
  } catch (error) {
    status(error.message, true);
  }
}

document.addEventListener("DOMContentLoaded", () => {
  const today = new Date();
  $("to").value = isoDay(today);
  $("from").value = isoDay(new Date(today.getTime() - 29 * 86400000));
  $("token").value = sessionStorage.getItem(TOKEN_KEY) || "";
  $("filters").addEventListener("submit", refresh);
  $("csv").addEventListener("click", downloadCsv);
  for (const radio of document.querySelectorAll('input[name="cohort"]')) {
    radio.addEventListener("change", () => refresh());
  }
  if ($("token").value) refresh();
});
