// chart.js draws the dashboard's line charts as SVG: one line per revision over the last
// minutes, a few grid lines, time ticks and a legend. No library.
"use strict";

const SVG = "http://www.w3.org/2000/svg";

// svgEl makes an SVG element with attributes.
function svgEl(name, attrs) {
  const el = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, String(v));
  return el;
}

// niceMax rounds a maximum up to 1, 2 or 5 times a power of ten, so the grid reads well.
function niceMax(v) {
  if (!(v > 0)) return 1;
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 2, 5, 10]) if (v <= m * p) return m * p;
  return 10 * p;
}

// lineChart returns a figure titled title with one line per entry of lines:
// {label, color, points: [[timeMillis, value or null], ...]}; a null value breaks the line.
// from and to (milliseconds) bound the time axis; format turns a value into a tick label.
function lineChart({ title, lines, from, to, format }) {
  const W = 360, H = 150, L = 44, R = 8, T = 8, B = 20;
  const fig = document.createElement("figure");
  fig.className = "chart";
  fig.dataset.title = title;
  fig.style.margin = "0";
  const h = document.createElement("h4");
  h.textContent = title;
  fig.appendChild(h);

  let max = 0;
  for (const l of lines) for (const [, v] of l.points) if (v != null) max = Math.max(max, v);
  max = niceMax(max);
  const x = (t) => L + ((t - from) / Math.max(to - from, 1)) * (W - L - R);
  const y = (v) => T + (1 - v / max) * (H - T - B);

  const svg = svgEl("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": title });
  // Grid lines and value ticks: 0, max/2, max.
  for (const f of [0, 0.5, 1]) {
    const v = max * f, yy = y(v);
    svg.appendChild(svgEl("line", { x1: L, x2: W - R, y1: yy, y2: yy, class: f === 0 ? "axis" : "grid" }));
    const t = svgEl("text", { x: L - 4, y: yy + 3, "text-anchor": "end" });
    t.textContent = format(v);
    svg.appendChild(t);
  }
  // Time ticks back from now, 30 s to 2 min apart as the window is short or long.
  const span = to - from, every = span <= 180000 ? 30000 : span <= 360000 ? 60000 : 120000;
  for (let ago = 0; to - ago >= from; ago += every) {
    const xx = x(to - ago);
    svg.appendChild(svgEl("line", { x1: xx, x2: xx, y1: H - B, y2: H - B + 3, class: "axis" }));
    const label = svgEl("text", { x: xx, y: H - 6, "text-anchor": "middle" });
    const m = Math.floor(ago / 60000), sec = (ago % 60000) / 1000;
    label.textContent = ago === 0 ? "now" : `-${m ? m + "m" : ""}${sec ? sec + "s" : ""}`;
    svg.appendChild(label);
  }
  // The lines: one path per revision, broken where a point has no value.
  for (const l of lines) {
    let d = "", pen = false;
    for (const [t, v] of l.points) {
      if (v == null) { pen = false; continue; }
      d += `${pen ? "L" : "M"}${x(t).toFixed(1)},${y(v).toFixed(1)}`;
      pen = true;
    }
    if (d === "") continue;
    const path = svgEl("path", { d, class: "line", stroke: l.color });
    path.dataset.label = l.label;
    svg.appendChild(path);
  }
  fig.appendChild(svg);

  const legend = document.createElement("div");
  legend.className = "legend";
  for (const l of lines) {
    const s = document.createElement("span");
    const sw = document.createElement("i");
    sw.style.background = l.color;
    s.append(sw, l.label);
    legend.appendChild(s);
  }
  fig.appendChild(legend);
  return fig;
}

// Value formats for the charts' ticks.
const formats = {
  rate: (v) => `${v >= 10 ? v.toFixed(0) : v.toFixed(1)}/s`,
  share: (v) => `${(v * 100).toFixed(v < 0.1 ? 1 : 0)}%`,
  seconds: (v) => (v < 1 ? `${(v * 1000).toFixed(0)}ms` : `${v.toFixed(1)}s`),
};
