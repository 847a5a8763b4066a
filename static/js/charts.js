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
