// Tables of the dashboard, each with a CSV of what it shows; the IB tree, opened level by level.
"use strict";

const NUMBER = new Intl.NumberFormat("en-US");
// Columns every figure table shares: people first (bots never push a row up), then money.
const FIGURE_COLUMNS = [
  { key: "humanClicks", label: "People", kind: "int" },
  { key: "botClicks", label: "Bots", kind: "int" },
  { key: "uniqueVisitors", label: "Visitors", kind: "int" },
  { key: "registrations", label: "Reg.", kind: "int" },
  { key: "firstDeposits", label: "FTD", kind: "int" },
  { key: "firstDepositAmount", label: "FTD amount", kind: "money" },
  { key: "depositAmount", label: "Deposits", kind: "money" },
  { key: "lots", label: "Lots", kind: "money" },
  { key: "brokerRevenue", label: "Revenue", kind: "money" },
];

function element(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = text;
  if (className) node.className = className;
  return node;
}

function shown(value, kind) {
  if (value === null || value === undefined) return "—";
  if (kind === "rate") return `${(value * 100).toFixed(1)} %`;
  if (typeof value === "number") return NUMBER.format(value);
  if (kind === "money") return grouped(String(value));
  return String(value);  // ids, names
}

// "145000.00" → "145,000.00": exact decimals from the API, only grouped for reading.
function grouped(text) {
  const match = /^(-?)(\d+)(\.\d+)?$/.exec(text);
  if (!match) return text;
  return `${match[1]}${match[2].replace(/\B(?=(\d{3})+(?!\d))/g, ",")}${match[3] || ""}`;
}

// A table panel: a title, a CSV button, and a table that scrolls sideways on a phone.
// columns: [{key, label, kind, value?(row)}]; the first column is the row's label.
function tablePanel(title, csvName, columns, rows, empty) {
  const panel = element("section", undefined, "panel table-panel");
  const head = element("div", undefined, "panel-head");
  const button = element("button", "CSV", "csv");
  button.type = "button";
  button.title = `Download ${title} as CSV`;
  button.addEventListener("click", () => download(csvName, csvText(
    columns.map((c) => c.label), rows.map((row) => columns.map((c) => cellValue(c, row))))));
  head.append(element("h2", title), button);
  const scroller = element("div", undefined, "scroller");
  const table = element("table");
  table.dataset.csv = csvName;
  const header = element("tr");
  for (const column of columns) header.append(element("th", column.label, column.kind || "text"));
  table.append(element("thead"));
  table.tHead.append(header);
  const body = element("tbody");
  for (const row of rows) body.append(tableRow(columns, row));
  if (!rows.length) {
    const none = element("tr");
    const cell = element("td", empty || "nothing in this period", "none");
    cell.colSpan = columns.length;
    none.append(cell);
    body.append(none);
  }
  table.append(body);
  scroller.append(table);
  panel.append(head, scroller);
  return panel;
}

function cellValue(column, row) {
  return column.value ? column.value(row) : row[column.key];
}

function tableRow(columns, row) {
  const tr = element("tr");
  for (const column of columns) {
    const value = cellValue(column, row);
    const blank = value === "" || value === null || value === undefined;
    const td = element("td", blank && !column.kind ? "(none)" : shown(value, column.kind),
      column.kind || "text");
    if (blank && !column.kind) td.classList.add("none");
    tr.append(td);
  }
  return tr;
}

// The top tables beside each other: fewer columns (the links and the tree have them all).
const COMPACT_KEYS = ["humanClicks", "uniqueVisitors", "registrations", "firstDeposits",
  "depositAmount", "lots", "brokerRevenue"];

function compact(key, label) {
  return [{ key, label }, ...FIGURE_COLUMNS.filter((c) => COMPACT_KEYS.includes(c.key))];
}

// --- the IB tree --------------------------------------------------------------------------

const TREE_COLUMNS = [
  { key: "partner", label: "Partner" },
  { key: "partnerId", label: "Partner id" },
  { key: "level", label: "Level", kind: "int" },
  { key: "childCount", label: "Direct partners", kind: "int" },
  { key: "clicks", label: "Clicks", kind: "int" },
  ...FIGURE_COLUMNS,
];

// `fetchLevel(partnerId|null)` answers the tree route's body for the current filters.
function treePanel(body, fetchLevel, onFocus) {
  const rows = [];  // what the table shows, in order, for the CSV
  const panel = tablePanel("IB tree", "ib-tree.csv", TREE_COLUMNS, [], "no partners here");
  panel.classList.add("tree");
  const tbody = panel.querySelector("tbody");
  tbody.replaceChildren();
  const path = element("p", undefined, "path");
  if (body.path.length) {
    path.append("Showing the partners under ");
    path.append(element("strong", body.path.map((p) => p.name || p.partnerId).join(" › ")));
  } else {
    path.textContent = "Showing the top of the tree (partners without a parent)";
  }
  if (body.childCount > body.children.length) {
    path.append(` · the ${body.children.length} busiest of ${NUMBER.format(body.childCount)}`);
  }
  panel.querySelector(".panel-head").after(path);
  const csvButton = panel.querySelector("button.csv");
  const fresh = csvButton.cloneNode(true);  // the CSV of the rows open right now
  fresh.addEventListener("click", () => download("ib-tree.csv", csvText(
    TREE_COLUMNS.map((c) => c.label),
    rows.map(({ node, depth }) => TREE_COLUMNS.map((c) => c.key === "partner"
      ? `${"  ".repeat(depth)}${node.name || node.partnerId}` : node[c.key])))));
  csvButton.replaceWith(fresh);

  function insert(children, after, depth) {
    let anchor = after;
    const at = anchor ? rows.findIndex((r) => r.tr === anchor) + 1 : rows.length;
    const added = children.map((node) => ({ node, depth, tr: treeRow(node, depth) }));
    rows.splice(at, 0, ...added);
    for (const row of added) {
      if (anchor) anchor.after(row.tr); else tbody.append(row.tr);
      anchor = row.tr;
    }
  }

  function collapse(index) {
    const { depth } = rows[index];
    let end = index + 1;
    while (end < rows.length && rows[end].depth > depth) rows[end++].tr.remove();
    rows.splice(index + 1, end - index - 1);
  }

  function treeRow(node, depth) {
    const tr = element("tr");
    tr.dataset.partner = node.partnerId;
    const first = element("td", undefined, "text partner");
    first.style.paddingLeft = `${4 + depth * 18}px`;
    const toggle = element("button", node.childCount ? "▸" : "·", "toggle");
    toggle.type = "button";
    toggle.disabled = !node.childCount;
    toggle.setAttribute("aria-expanded", "false");
    toggle.setAttribute("aria-label", `open ${node.partnerId}`);
    const name = element("button", node.name || node.partnerId, "link");
    name.type = "button";
    name.title = `Show ${node.partnerId} and its downline`;
    name.addEventListener("click", () => onFocus(node.partnerId));
    first.append(toggle, name);
    tr.append(first);
    for (const column of TREE_COLUMNS.slice(1)) {
      tr.append(element("td", shown(node[column.key], column.kind), column.kind || "text"));
    }
    toggle.addEventListener("click", async () => {
      const index = rows.findIndex((r) => r.tr === tr);
      if (toggle.getAttribute("aria-expanded") === "true") {
        collapse(index);
        toggle.textContent = "▸";
        toggle.setAttribute("aria-expanded", "false");
        return;
      }
      toggle.disabled = true;
      try {
        const level = await fetchLevel(node.partnerId);
        insert(level.children, tr, depth + 1);
        toggle.textContent = "▾";
        toggle.setAttribute("aria-expanded", "true");
      } finally {
        toggle.disabled = false;
      }
    });
    return tr;
  }

  insert(body.children, null, 0);
  if (!body.children.length) {
    const none = element("tr");
    const cell = element("td", "no partners here", "none");
    cell.colSpan = TREE_COLUMNS.length;
    none.append(cell);
    tbody.append(none);
  }
  return panel;
}
