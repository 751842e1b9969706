// The marketing dashboard: reads /api/analytics/* with the token kept in sessionStorage; the view
// (period, filters, day or hour) lives in the URL's query string. Charts: plotly.js, served by
// this app (/dashboard/plotly.min.js).
"use strict";

const TOKEN_KEY = "invite-analytics-token";
const TRAFFIC_CARDS = [
  ["clicks", "Clicks"], ["humanClicks", "People"], ["botClicks", "Bots"],
  ["uniqueVisitors", "Unique visitors"], ["registrations", "Registrations"],
  ["conversionRate", "Registrations per visitor", "rate"],
];
const MONEY_CARDS = [
  ["accounts", "Accounts opened"], ["kycApproved", "KYC approved"],
  ["firstDeposits", "First deposits"], ["firstDepositAmount", "First-deposit amount", "money"],
  ["depositors", "Depositors"], ["depositAmount", "Deposits", "money"],
  ["withdrawalAmount", "Withdrawals", "money"], ["activeTraders", "Active traders"],
  ["lots", "Lots", "money"], ["brokerRevenue", "Broker revenue", "money"],
  ["commissions", "Commissions", "money"],
];
const ADMIN_CARDS = [
  ["suspendedClicks", "Suspended partner"], ["orphanClicks", "Orphan visits"],
  ["unresolvedClicks", "Unresolved"], ["unattributedEvents", "Events without a registration"],
];
// Top tables after the links: [by, title, label column].
const BREAKDOWNS = [
  ["partner", "Partners", "Partner"], ["campaign", "Campaigns", "Campaign"],
  ["subId", "Sub-IDs", "Sub-ID"], ["country", "Countries", "Country"],
  ["referrer", "Referrers", "Referrer"], ["device", "Devices", "Device"],
  ["os", "Operating systems", "OS"], ["browser", "Browsers", "Browser"],
];
const STEP_NAMES = { visitors: "Visitors", registrations: "Registrations", kyc: "KYC approved",
  ftd: "First deposit", active: "Traded" };
const COLORS = { people: "#2f6fdb", bots: "#c2c8d0", registrations: "#e07b24",
  previous: "#7b8794", events: "#14a37f" };
const PLOT_CONFIG = { displaylogo: false, responsive: true, displayModeBar: false };
const MAX_HOURLY_DAYS = 31;

const $ = (id) => document.getElementById(id);
let view = null;
let loading = 0;

function token() {
  return $("token").value.trim();
}

async function call(path, params) {
  const response = await fetch(`${path}?${params}`, {
    headers: { Authorization: `Bearer ${token()}` }, cache: "no-store",
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

const ask = (path, params) => call(path, params).then((r) => r.json());

function status(text, isError) {
  $("status").textContent = text;
  $("status").className = isError ? "error" : "";
}

function number(value) {
  return typeof value === "string" ? Number.parseFloat(value) : value;
}

// "▲ 12.5 %" against the period before; amounts are compared as numbers, shown as sent.
function delta(now, before) {
  const [a, b] = [number(now), number(before)];
  if (a === null || a === undefined || b === null || b === undefined) return null;
  if (b === 0) return a === 0 ? { text: "±0", tone: "flat" } : { text: "new", tone: "up" };
  const change = ((a - b) / Math.abs(b)) * 100;
  if (Math.abs(change) < 0.05) return { text: "±0 %", tone: "flat" };
  const arrow = change > 0 ? "▲" : "▼";
  return { text: `${arrow} ${Math.abs(change).toFixed(1)} %`, tone: change > 0 ? "up" : "down" };
}

function cards(container, list, summary, previous) {
  container.replaceChildren();
  for (const [key, label, kind] of list) {
    if (!(key in summary) || summary[key] === null) continue;  // admin-only figures
    const card = element("div", undefined, "card");
    card.dataset.key = key;
    card.append(element("div", shown(summary[key], kind), "value"), element("div", label, "label"));
    const change = previous ? delta(summary[key], previous[key]) : null;
    if (change) {
      const note = element("div", change.text, `delta ${change.tone}`);
      note.title = `previous period: ${shown(previous[key], kind)}`;
      card.append(note);
    }
    container.append(card);
  }
}

function plot(id, traces, layout) {
  if (typeof Plotly === "undefined") {
    $(id).textContent = "The charting library did not load (see /dashboard/plotly.min.js).";
    return;
  }
  const base = {
    margin: { l: 48, r: 48, t: 8, b: 40 }, font: { family: "system-ui, sans-serif", size: 12 },
    paper_bgcolor: "rgba(0,0,0,0)", plot_bgcolor: "rgba(0,0,0,0)",
    legend: { orientation: "h", y: -0.18 }, hovermode: "x unified",
  };
  Plotly.react(id, traces, { ...base, ...layout }, PLOT_CONFIG);
}

function trafficChart(series, previous) {
  const x = series.points.map((p) => p.start);
  const traces = [
    { type: "bar", name: "People", x, y: series.points.map((p) => p.humanClicks),
      marker: { color: COLORS.people } },
    { type: "bar", name: "Bots", x, y: series.points.map((p) => p.botClicks),
      marker: { color: COLORS.bots } },
    { type: "scatter", mode: "lines+markers", name: "Registrations", x, yaxis: "y2",
      y: series.points.map((p) => p.registrations), line: { color: COLORS.registrations } },
  ];
  if (previous) {  // the period before, laid over this one bucket by bucket
    traces.push({ type: "scatter", mode: "lines", name: "People, period before", x,
      y: previous.points.slice(0, x.length).map((p) => p.humanClicks),
      line: { color: COLORS.previous, dash: "dot" } });
  }
  plot("chart", traces, {
    barmode: "stack", height: 300,
    xaxis: { type: "date", tickformat: series.interval === "hour" ? "%b %d %H:%M" : "%b %d" },
    yaxis: { title: { text: "clicks" }, rangemode: "tozero", fixedrange: true },
    yaxis2: { title: { text: "registrations" }, overlaying: "y", side: "right",
      rangemode: "tozero", showgrid: false, fixedrange: true, tickformat: ",d",
      dtick: Math.max(1, Math.ceil(Math.max(0, ...series.points.map((p) => p.registrations)) / 5)) },
  });
  const columns = [{ key: "start", label: "Start (UTC)" }, { key: "clicks", label: "Clicks", kind: "int" },
    ...FIGURE_COLUMNS];
  $("series-csv").onclick = () => download(`clicks-by-${series.interval}.csv`, csvText(
    columns.map((c) => c.label), series.points.map((p) => columns.map((c) => p[c.key]))));
}

function funnelChart(id, funnel, color) {
  const names = funnel.steps.map((s) => STEP_NAMES[s.step] || s.step);
  plot(id, [{
    type: "funnel", y: names, x: funnel.steps.map((s) => s.count),
    text: funnel.steps.map((s) => `${NUMBER.format(s.count)}${s.rate === null ? ""
      : ` · ${(s.rate * 100).toFixed(1)} %`}`),
    textinfo: "text", textposition: "outside", cliponaxis: false,
    marker: { color }, connector: { fillcolor: "#e8eef9" }, hoverinfo: "y+text",
  }], { height: 260, margin: { l: 100, r: 90, t: 8, b: 8 }, hovermode: "closest",
    showlegend: false });
}

function funnelPanel(byClicks, byEvents) {
  const names = byClicks.steps.map((s) => STEP_NAMES[s.step] || s.step);
  funnelChart("funnel-clicks", byClicks, COLORS.people);
  funnelChart("funnel-events", byEvents, COLORS.events);
  const rows = byClicks.steps.map((step, i) => ({
    step: names[i], clicks: step.count, clicksRate: step.rate,
    events: byEvents.steps[i].count, eventsRate: byEvents.steps[i].rate,
  }));
  $("funnel-table").replaceWith(Object.assign(tablePanel("Funnel", "funnel.csv", [
    { key: "step", label: "Step" },
    { key: "clicks", label: "Clicked in period", kind: "int" },
    { key: "clicksRate", label: "of step before", kind: "rate" },
    { key: "events", label: "Events in period", kind: "int" },
    { key: "eventsRate", label: "of step before", kind: "rate" },
  ], rows), { id: "funnel-table" }));
}

const LINK_COLUMNS = [
  { key: "key", label: "Link" }, { key: "partnerId", label: "Partner" },
  { key: "campaign", label: "Campaign" }, { key: "subId", label: "Sub-ID" }, ...FIGURE_COLUMNS,
];

function readView() {
  const preset = $("preset").value;
  const from = parseDay($("from").value);
  const to = parseDay($("to").value);
  const today = parseDay(isoDay(new Date()));
  const range = preset === "custom" ? [from, to] : presetRange(preset, today);
  if (!range[0] || !range[1]) throw new Error("choose both dates (from and to)");
  if (range[0] > range[1]) throw new Error("the first day must not be after the last");
  return {
    preset, from: range[0], to: range[1], partnerId: $("partnerId").value.trim(),
    includeDownline: $("includeDownline").checked, campaign: $("campaign").value.trim(),
    interval: document.querySelector("input[name=interval]:checked").value,
    compare: $("compare").checked,
  };
}

function showView(shownView) {
  $("preset").value = shownView.preset;
  $("from").value = isoDay(shownView.from);
  $("to").value = isoDay(shownView.to);
  $("partnerId").value = shownView.partnerId;
  $("includeDownline").checked = shownView.includeDownline;
  $("campaign").value = shownView.campaign;
  $("compare").checked = shownView.compare;
  document.querySelector(`input[name=interval][value=${shownView.interval}]`).checked = true;
}

async function refresh(event) {
  if (event) event.preventDefault();
  if (!token()) {
    status("Enter an admin or partner token to see the figures.", true);
    return;
  }
  try {
    view = readView();
  } catch (error) {
    status(error.message, true);
    return;
  }
  sessionStorage.setItem(TOKEN_KEY, token());
  showView(view);
  history.replaceState(null, "", `${location.pathname}?${queryFromView(view)}`);
  const mine = ++loading;
  document.body.classList.add("loading");
  status("Loading…");
  try {
    await load(view, mine);
  } catch (error) {
    if (mine === loading) status(error.message, true);
  } finally {
    if (mine === loading) document.body.classList.remove("loading");
  }
}

async function load(current, mine) {
  const filter = apiFilter(current, current.from, current.to);
  const days = daysIn(current.from, current.to);
  let interval = current.interval;
  let note = "";
  if (interval === "hour" && days > MAX_HOURLY_DAYS) {
    interval = "day";
    note = ` · hours are shown for at most ${MAX_HOURLY_DAYS} days: showing days`;
  }
  const [beforeFirst, beforeLast] = previousRange(current.from, current.to);
  const before = apiFilter(current, beforeFirst, beforeLast);
  const withParam = (params, name, value) => {
    const copy = new URLSearchParams(params);
    copy.set(name, value);
    return copy;
  };
  const treeParams = new URLSearchParams(filter);
  treeParams.delete("includeDownline");
  const asks = [
    ask("/api/analytics/summary", filter),
    current.compare ? ask("/api/analytics/summary", before) : null,
    ask("/api/analytics/timeseries", withParam(filter, "interval", interval)),
    current.compare ? ask("/api/analytics/timeseries", withParam(before, "interval", interval)) : null,
    ask("/api/analytics/funnel", withParam(filter, "cohort", "clicks")),
    ask("/api/analytics/funnel", withParam(filter, "cohort", "events")),
    ask("/api/analytics/tree", treeParams),
    ask("/api/analytics/breakdown", withParam(withParam(filter, "by", "link"), "limit", "20")),
    ...BREAKDOWNS.map(([by]) =>
      ask("/api/analytics/breakdown", withParam(withParam(filter, "by", by), "limit", "20"))),
  ];
  const [summary, previous, series, previousSeries, byClicks, byEvents, tree, topLinks,
    ...tops] = await Promise.all(asks);
  if (mine !== loading) return;  // a newer view was asked for meanwhile
  cards($("cards"), TRAFFIC_CARDS, summary, previous);
  cards($("money"), MONEY_CARDS, summary, previous);
  cards($("admin-cards"), ADMIN_CARDS, summary, previous);
  trafficChart(series, previousSeries);
  funnelPanel(byClicks, byEvents);
  const fetchLevel = (partnerId) => {
    const params = new URLSearchParams(treeParams);
    params.set("partnerId", partnerId);
    return ask("/api/analytics/tree", params);
  };
  $("tree").replaceChildren(treePanel(tree, fetchLevel, focusPartner));
  $("links").replaceChildren(tablePanel("Top links", "top-links.csv", LINK_COLUMNS, topLinks.rows));
  $("breakdowns").replaceChildren(...tops.map((result, i) => {
    const [by, title, label] = BREAKDOWNS[i];
    const columns = compact("key", label);
    if (by === "partner") {
      columns.splice(1, 0, { key: "name", label: "Name" });
    }
    return tablePanel(title, `top-${by}.csv`, columns, result.rows);
  }));
  partnerChoices(tops[0].rows);
  const who = summary.filter.partnerId
    ? `partner ${summary.filter.partnerId}${current.includeDownline ? " and its downline" : ""}`
    : "all partners";
  const period = `${isoDay(current.from)} to ${isoDay(current.to)} (UTC, ${days} day${days > 1 ? "s" : ""})`;
  const compared = current.compare
    ? ` · compared with ${isoDay(beforeFirst)} to ${isoDay(beforeLast)}` : "";
  status(`${who}, ${period}${compared}${note}`);
}

// The partner box suggests the partners of the partners table (name and id).
function partnerChoices(rows) {
  $("partner-list").replaceChildren(...rows.filter((row) => row.key).map((row) => {
    const option = element("option");
    option.value = row.key;
    if (row.name && row.name !== row.key) option.label = row.name;
    return option;
  }));
}

function focusPartner(partnerId) {
  $("partnerId").value = partnerId;
  $("includeDownline").checked = true;
  refresh();
}

function presetChanged() {
  const preset = $("preset").value;
  const range = presetRange(preset, parseDay(isoDay(new Date())));
  if (range) {
    $("from").value = isoDay(range[0]);
    $("to").value = isoDay(range[1]);
  }
  refresh();
}

async function downloadClicks() {
  status("Preparing the clicks CSV…");
  try {
    const current = readView();
    const params = apiFilter(current, current.from, current.to);
    const response = await call("/api/analytics/clicks.csv", params);
    const disposition = response.headers.get("Content-Disposition") || "";
    const name = (disposition.match(/filename="([^"]+)"/) || [null, "clicks.csv"])[1];
    download(name, await response.blob());
    status(`Downloaded ${name}`);
  } catch (error) {
    status(error.message, true);
  }
}

async function copyLink() {
  const url = location.href;
  try {
    await navigator.clipboard.writeText(url);
    status("Link to this view copied (the token is not in it).");
  } catch (_) {
    status(`Link to this view: ${url}`);
  }
}

document.addEventListener("DOMContentLoaded", () => {
  const today = parseDay(isoDay(new Date()));
  const preset = $("preset");
  for (const [value, label] of Object.entries(PRESETS)) {
    const option = element("option", label);
    option.value = value;
    preset.append(option);
  }
  showView(viewFromQuery(location.search, today));
  $("token").value = sessionStorage.getItem(TOKEN_KEY) || "";
  $("filters").addEventListener("submit", refresh);
  preset.addEventListener("change", presetChanged);
  for (const id of ["from", "to"]) {
    $(id).addEventListener("change", () => { $("preset").value = "custom"; });
  }
  for (const input of document.querySelectorAll("input[name=interval], #compare, #includeDownline")) {
    input.addEventListener("change", () => refresh());
  }
  $("csv").addEventListener("click", downloadClicks);
  $("share").addEventListener("click", copyLink);
  $("forget").addEventListener("click", () => {
    sessionStorage.removeItem(TOKEN_KEY);
    $("token").value = "";
    status("Token forgotten in this tab.");
  });
  if (token()) refresh(); else status("Enter an admin or partner token to see the figures.");
});
