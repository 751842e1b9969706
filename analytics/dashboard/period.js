// The dashboard's view as data: date presets, the period before, and the view in the URL's query
// string (never the token), so that a view can be shared and reopened.
"use strict";

const DAY_MS = 86400000;
const PRESETS = {
  today: "Today",
  "7d": "Last 7 days",
  "30d": "Last 30 days",
  month: "This month",
  "last-month": "Last month",
  custom: "Custom",
};
// Query-string names of the view; values are checked when read back.
const VIEW_KEYS = ["preset", "from", "to", "partnerId", "includeDownline", "campaign", "interval",
  "compare"];

function isoDay(date) {
  return date.toISOString().slice(0, 10);
}

function parseDay(text) {
  if (!/^\d{4}-\d{2}-\d{2}$/.test(text || "")) return null;
  const date = new Date(`${text}T00:00:00Z`);
  return Number.isNaN(date.getTime()) ? null : date;
}

function addDays(date, days) {
  return new Date(date.getTime() + days * DAY_MS);
}

// A preset's first and last day (both included, UTC), for a given today.
function presetRange(preset, today) {
  const start = new Date(Date.UTC(today.getUTCFullYear(), today.getUTCMonth(), 1));
  switch (preset) {
    case "today": return [today, today];
    case "7d": return [addDays(today, -6), today];
    case "30d": return [addDays(today, -29), today];
    case "month": return [start, today];
    case "last-month": {
      const last = addDays(start, -1);
      return [new Date(Date.UTC(last.getUTCFullYear(), last.getUTCMonth(), 1)), last];
    }
    default: return null;
  }
}

// The period of the same length just before [first, last] (days, both included).
function previousRange(first, last) {
  const days = Math.round((last - first) / DAY_MS) + 1;
  return [addDays(first, -days), addDays(first, -1)];
}

function daysIn(first, last) {
  return Math.round((last - first) / DAY_MS) + 1;
}

// The view from a query string, every value checked; what is missing or wrong takes its default.
function viewFromQuery(search, today) {
  const params = new URLSearchParams(search);
  const view = {
    preset: PRESETS[params.get("preset")] ? params.get("preset") : "30d",
    from: null, to: null,
    partnerId: (params.get("partnerId") || "").slice(0, 64),
    includeDownline: params.get("includeDownline") !== "0",
    campaign: (params.get("campaign") || "").slice(0, 128),
    interval: params.get("interval") === "hour" ? "hour" : "day",
    compare: params.get("compare") !== "0",
  };
  const from = parseDay(params.get("from"));
  const to = parseDay(params.get("to"));
  if (view.preset === "custom" && from && to && from <= to) {
    [view.from, view.to] = [from, to];
  } else {
    if (view.preset === "custom") view.preset = "30d";
    [view.from, view.to] = presetRange(view.preset, today);
  }
  return view;
}

// The view as a query string: a preset is kept as its name, so a shared "last 7 days" stays so.
function queryFromView(view) {
  const params = new URLSearchParams({ preset: view.preset });
  if (view.preset === "custom") {
    params.set("from", isoDay(view.from));
    params.set("to", isoDay(view.to));
  }
  if (view.partnerId) params.set("partnerId", view.partnerId);
  if (!view.includeDownline) params.set("includeDownline", "0");
  if (view.campaign) params.set("campaign", view.campaign);
  if (view.interval !== "day") params.set("interval", view.interval);
  if (!view.compare) params.set("compare", "0");
  return params.toString();
}

// The API's filter for a range of days (a bare `to` date includes that day).
function apiFilter(view, first, last) {
  const params = new URLSearchParams({ from: isoDay(first), to: isoDay(last) });
  if (view.partnerId) params.set("partnerId", view.partnerId);
  if (view.campaign) params.set("campaign", view.campaign);
  params.set("includeDownline", view.includeDownline ? "true" : "false");
  return params;
}

// CSV of what a table shows. Text cells that a spreadsheet would run as a formula (= + - @, tab,
// carriage return first) are neutralised with a leading apostrophe (OWASP, "CSV injection").
function csvCell(value) {
  if (value === null || value === undefined) return "";
  let text = String(value);
  if (typeof value === "string" && /^[=+\-@\t\r]/.test(text)) text = `'${text}`;
  return /[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

function csvText(header, rows) {
  return [header, ...rows].map((row) => row.map(csvCell).join(",")).join("\r\n") + "\r\n";
}

function download(name, text, type) {
  const link = document.createElement("a");
  link.href = URL.createObjectURL(new Blob([text], { type: type || "text/csv;charset=utf-8" }));
  link.download = name;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 1000);
}
