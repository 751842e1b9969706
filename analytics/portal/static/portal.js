// The portal's only script: copy buttons and the overview's day chart (plotly.js, served by the app).
"use strict";

function copyText(text) {
  if (navigator.clipboard && window.isSecureContext) return navigator.clipboard.writeText(text);
  // Plain http (a private network): select a hidden field and copy it the old way.
  const field = document.createElement("textarea");
  field.value = text;
  field.setAttribute("readonly", "");
  field.className = "offscreen";
  document.body.append(field);
  field.select();
  const done = document.execCommand("copy");
  field.remove();
  return done ? Promise.resolve() : Promise.reject(new Error("copy refused"));
}

for (const button of document.querySelectorAll("button[data-copy]")) {
  button.addEventListener("click", () => {
    copyText(button.dataset.copy).then(() => {
      button.textContent = "Copied";
      button.classList.add("copied");
      setTimeout(() => { button.textContent = "Copy"; button.classList.remove("copied"); }, 2000);
    }, () => {
      const field = button.parentElement.querySelector("input.url");
      if (field) field.select();  // the person can still copy it by hand
      button.textContent = "Select & copy";
    });
  });
}

const chart = document.getElementById("chart");
if (chart) {
  const series = JSON.parse(chart.dataset.series || "[]");
  if (typeof Plotly === "undefined") {
    chart.textContent = "The chart could not be drawn (the charting library did not load).";
  } else {
    const x = series.map((p) => p.day);
    const narrow = window.matchMedia("(max-width: 600px)").matches;
    Plotly.newPlot(chart, [
      { type: "bar", name: "Clicks", x, y: series.map((p) => p.clicks), marker: { color: "#9bb8ee" } },
      { type: "scatter", mode: "lines+markers", name: "Registrations", x, yaxis: "y2",
        y: series.map((p) => p.registrations), line: { color: "#2f6fdb", width: 2 }, marker: { size: 5 } },
      { type: "scatter", mode: "lines+markers", name: "First deposits", x, yaxis: "y2",
        y: series.map((p) => p.ftd), line: { color: "#13795b", width: 2 }, marker: { size: 5 } },
    ], {
      height: narrow ? 260 : 300, margin: { l: 36, r: 36, t: 8, b: 36 },
      font: { family: "system-ui, sans-serif", size: 12 },
      paper_bgcolor: "rgba(0,0,0,0)", plot_bgcolor: "rgba(0,0,0,0)",
      legend: { orientation: "h", y: -0.2 }, hovermode: "x unified", bargap: 0.25,
      xaxis: { type: "date", tickformat: "%b %d", fixedrange: true },
      yaxis: { rangemode: "tozero", fixedrange: true, gridcolor: "#e3e7ec" },
      // People on the left; registrations and first deposits (whole numbers) on the right.
      yaxis2: { overlaying: "y", side: "right", rangemode: "tozero", fixedrange: true, showgrid: false,
                tickmode: "auto", tickformat: ",d", nticks: 5 },
    }, { displayModeBar: false, responsive: true });
  }
}
