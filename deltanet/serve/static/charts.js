// Plain canvas drawing shared by the two pages: line charts, bars, grids of small images.
"use strict";

const Charts = (() => {
  const PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b",
                   "#e377c2", "#17becf", "#7f7f7f", "#bcbd22"];

  function fmt(v) {
    if (v === 0) return "0";
    const a = Math.abs(v);
    return a >= 1000 || a < 0.01 ? v.toExponential(1) : v.toPrecision(3);
  }

  // series: [{name, color, points: [[x, y], ...], dots: bool}]; opts: {logY}
  function line(canvas, series, opts = {}) {
    const ctx = canvas.getContext("2d");
    const W = canvas.width, H = canvas.height, L = 52, R = 8, T = 8, B = 22;
    ctx.clearRect(0, 0, W, H);
    const tf = (y) => (opts.logY ? Math.log10(Math.max(y, 1e-12)) : y);
    let x0 = Infinity, x1 = -Infinity, y0 = Infinity, y1 = -Infinity;
    for (const s of series) {
      for (const [x, y] of s.points) {
        if (y === null || !isFinite(y)) continue;
        x0 = Math.min(x0, x); x1 = Math.max(x1, x);
        y0 = Math.min(y0, tf(y)); y1 = Math.max(y1, tf(y));
      }
    }
    ctx.strokeStyle = "#99a"; ctx.strokeRect(L, T, W - L - R, H - T - B);
    if (!isFinite(x0)) return;
    if (x1 === x0) x1 = x0 + 1;
    if (y1 === y0) { y1 += 0.5; y0 -= 0.5; }
    const px = (x) => L + ((x - x0) / (x1 - x0)) * (W - L - R);
    const py = (y) => T + (1 - (tf(y) - y0) / (y1 - y0)) * (H - T - B);
    ctx.fillStyle = "#445"; ctx.font = "11px sans-serif";
    const label = (v) => fmt(opts.logY ? 10 ** v : v);
    ctx.fillText(label(y1), 2, T + 9); ctx.fillText(label(y0), 2, H - B);
    ctx.fillText(String(Math.round(x0)), L, H - 6);
    ctx.fillText(String(Math.round(x1)), W - R - 30, H - 6);
    series.forEach((s, i) => {
      ctx.strokeStyle = ctx.fillStyle = s.color || PALETTE[i % PALETTE.length];
      const pts = s.points.filter(([, y]) => y !== null && isFinite(y));
      if (s.dots) {
        for (const [x, y] of pts) { ctx.beginPath(); ctx.arc(px(x), py(y), 3, 0, 7); ctx.fill(); }
      } else {
        const every = Math.max(1, Math.floor(pts.length / (2 * W))); // at most 2 points a pixel
        ctx.beginPath();
        pts.forEach(([x, y], j) => {
          if (j % every && j !== pts.length - 1) return;
          j ? ctx.lineTo(px(x), py(y)) : ctx.moveTo(px(x), py(y));
        });
        ctx.stroke();
      }
      if (s.name) ctx.fillText(s.name, L + 6, T + 14 + 13 * i);
    });
  }

  // values: numbers; bars up from (or down to) a zero line, optional labels under them
  function bars(canvas, values, opts = {}) {
    const ctx = canvas.getContext("2d");
    const W = canvas.width, H = canvas.height, B = opts.labels ? 16 : 2;
    ctx.clearRect(0, 0, W, H);
    const hi = Math.max(0, ...values), lo = Math.min(0, ...values);
    const span = hi - lo || 1, zero = 2 + (hi / span) * (H - B - 4);
    const w = W / values.length;
    values.forEach((v, i) => {
      ctx.fillStyle = i === opts.highlight ? "#0a6" : v >= 0 ? "#4a7bd0" : "#d0604a";
      const h = (Math.abs(v) / span) * (H - B - 4);
      ctx.fillRect(i * w + w * 0.1, v >= 0 ? zero - h : zero, Math.max(1, w * 0.8), h);
      if (opts.labels) {
        ctx.fillStyle = "#334"; ctx.font = "11px sans-serif";
        ctx.fillText(opts.labels[i], i * w + w * 0.35, H - 3);
      }
    });
  }

  // grey (0..1) or diverging (-1..1: blue, black, red) colour of a normalised value
  function colour(v, diverging) {
    if (!diverging) { const g = Math.round(255 * Math.min(1, Math.max(0, v))); return [g, g, g]; }
    const a = Math.round(255 * Math.min(1, Math.abs(v)));
    return v >= 0 ? [a, Math.round(a * 0.25), 0] : [0, Math.round(a * 0.4), a];
  }

  // one 2-D array into (x, y, w, h) of the canvas, normalised by [lo, hi]; fade: full colour
  // with opacity |value| (an overlay that leaves what is under small values visible)
  function image(ctx, a, x, y, w, h, lo, hi, diverging, fade = false) {
    const rows = a.length, cols = a[0].length;
    const img = ctx.createImageData(cols, rows);
    const scale = diverging ? Math.max(Math.abs(lo), Math.abs(hi)) || 1 : hi - lo || 1;
    for (let r = 0; r < rows; r++) {
      for (let c = 0; c < cols; c++) {
        const v = diverging ? a[r][c] / scale : (a[r][c] - lo) / scale;
        const [R, G, B] = colour(fade ? Math.sign(v) : v, diverging), k = 4 * (r * cols + c);
        img.data[k] = R; img.data[k + 1] = G; img.data[k + 2] = B;
        img.data[k + 3] = fade ? Math.round(230 * Math.min(1, Math.abs(v))) : 255;
      }
    }
    const tmp = document.createElement("canvas");
    tmp.width = cols; tmp.height = rows;
    tmp.getContext("2d").putImageData(img, 0, 0);
    ctx.imageSmoothingEnabled = false;
    ctx.drawImage(tmp, x, y, w, h);
  }

  function range(arrays) {
    let lo = Infinity, hi = -Infinity;
    for (const v of arrays.flat(Infinity)) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
    return [lo, hi];
  }

  // maps: [F][h][w] as a grid of small images in the canvas, resized to fit them
  function grid(canvas, maps, opts = {}) {
    const [lo, hi] = range(maps), diverging = opts.diverging ?? lo < 0;
    const h = maps[0].length, w = maps[0][0].length;
    const cell = opts.cell || Math.max(1, Math.floor(48 / Math.max(h, w)));
    const cw = w * cell, ch = h * cell, gap = 3;
    const perRow = Math.max(1, Math.floor((opts.width || canvas.width) / (cw + gap)));
    if (opts.resize !== false) {
      canvas.width = Math.min(maps.length, perRow) * (cw + gap);
      canvas.height = Math.ceil(maps.length / perRow) * (ch + gap);
    }
    const ctx = canvas.getContext("2d");
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    maps.forEach((m, i) => {
      const x = (i % perRow) * (cw + gap), y = Math.floor(i / perRow) * (ch + gap);
      image(ctx, m, x, y, cw, ch, lo, hi, diverging);
    });
  }

  return { line, bars, grid, image, range, PALETTE };
})();
