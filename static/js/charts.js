// Thin helpers over uPlot (vendored in static/vendor/uplot, loaded as a classic script that
// defines window.uPlot). Charts follow the page theme and the container's width.

import { cssVar } from "./ui.js";

export function themeAxes() {
  const fg = cssVar("--muted") || "#666";
  const grid = cssVar("--border") || "#ddd";
  const axis = { stroke: fg, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid, width: 1 } };
  return [axis, { ...axis }];
}

/**
 * A uPlot chart sized to `el`, redrawn on resize and on theme change.
 * @param {HTMLElement} el
 * @param {(axes) => object} makeOpts  builds uPlot options (without width/height)
 * @param {Array} data
 */
export function makeChart(el, makeOpts, data, height = 240) {
  let plot = null;
  const build = () => {
    const current = plot ? plot.data : data;
    plot?.destroy();
    const opts = makeOpts(themeAxes());
    plot = new window.uPlot({ width: Math.max(280, el.clientWidth), height, ...opts }, current, el);
    handle.plot = plot;
  };
  const handle = {
    plot: null,
    setData(d) {
      plot.setData(d);
    },
  };
  build();
  new ResizeObserver(() => plot.setSize({ width: Math.max(280, el.clientWidth), height })).observe(el);
  document.addEventListener("themechange", build);
  return handle;
}

/**
 * Lines for labels drawn along a chart's x axis, so that no two overlap: each label goes on
 * the first line (0, 1, ...) where it clears the label before it by `gap`; a label with no
 * such line among `lines` gets -1 (not drawn: its band's colour still says what it is, and a
 * label drawn over another would say neither). Pure: no canvas.
 *
 * @param {{x: number, width: number}[]} items  left edge and width of each label, in px
 * @returns {number[]} the line of each item, in the order given
 */
export function labelLines(items, { lines = 2, gap = 6 } = {}) {
  const rightEdge = new Array(lines).fill(-Infinity);
  const order = items.map((_, i) => i).sort((a, b) => items[a].x - items[b].x);
  const out = new Array(items.length).fill(-1);
  for (const i of order) {
    const { x, width } = items[i];
    const line = rightEdge.findIndex((right) => x >= right + gap);
    if (line < 0) continue;
    rightEdge[line] = x + width;
    out[i] = line;
  }
  return out;
}

/**
 * The x range of a live time chart: its data's, or, before the first point, the `windowSec`
 * seconds up to now (uPlot's own default for no data is a span of years in the future).
 * @returns {[number, number]} unix seconds
 */
export function liveTimeRange(min, max, windowSec, now = Date.now() / 1000) {
  if (min == null || max == null || !Number.isFinite(min) || !Number.isFinite(max)) return [now - windowSec, now];
  if (max - min < 1) return [max - 1, max]; // one point: a second's span, not a zero-width axis
  return [min, max];
}
