// Pixel analysis for the renderer tests (pure functions over RGBA buffers; no browser here).
// Regions are found from the rendered image itself: the head is the part of the foreground above the
// shoulder line (the first row much wider than everything above it), so no pixel position is hard-coded.

/** @typedef {{width: number, height: number, px: Uint8Array}} Image RGBA, row-major, top row first */
/** @typedef {{x0: number, y0: number, x1: number, y1: number}} Box inclusive-exclusive pixel box */

/** @returns {Image} from renderTest.capture()'s {width, height, rgba (base64)} */
export function decodeCapture(c) {
  return { width: c.width, height: c.height, px: new Uint8Array(Buffer.from(c.rgba, "base64")) };
}

/** '#rrggbb' → [r, g, b] */
export function parseHex(hex) {
  const n = parseInt(hex.replace(/^#|^0x/, ""), 16);
  return [(n >> 16) & 255, (n >> 8) & 255, n & 255];
}

/**
 * Foreground mask: pixels whose |ΔR|+|ΔG|+|ΔB| from the background exceeds `tol`.
 * @returns {{mask: Uint8Array, fraction: number}}
 */
export function foreground(img, bg, tol = 40) {
  const n = img.width * img.height;
  const mask = new Uint8Array(n);
  let count = 0;
  for (let i = 0; i < n; i++) {
    const d = Math.abs(img.px[4 * i] - bg[0]) + Math.abs(img.px[4 * i + 1] - bg[1]) + Math.abs(img.px[4 * i + 2] - bg[2]);
    if (d > tol) { mask[i] = 1; count++; }
  }
  return { mask, fraction: count / n };
}

/**
 * The head's box: from the first foreground row down to the shoulder line. The head's width is the widest
 * row in the top 40 % of the foreground; the shoulder line is the first row below that widest row that is
 * more than `ratio` × as wide (the whole foreground when there is none: a head without shoulders).
 * @returns {(Box & {fgBox: Box, shoulderY: number|null, headWidth: number})|null}
 */
export function headBox(img, mask, ratio = 1.3) {
  const { width: w, height: h } = img;
  const rowCount = new Array(h).fill(0);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) rowCount[y] += mask[y * w + x];
  const rows = rowCount.map((c, y) => (c >= 3 ? y : -1)).filter((y) => y >= 0);
  if (!rows.length) return null;
  const top = rows[0];
  const bottom = rows[rows.length - 1] + 1;
  let widestY = top;
  for (let y = top; y < top + 0.4 * (bottom - top); y++) if (rowCount[y] > rowCount[widestY]) widestY = y;
  let shoulderY = null;
  for (let y = widestY; y < bottom; y++) if (rowCount[y] > ratio * rowCount[widestY]) { shoulderY = y; break; }
  const y1 = shoulderY ?? bottom;
  const extent = (ya, yb) => {
    let x0 = w, x1 = 0;
    for (let y = ya; y < yb; y++) for (let x = 0; x < w; x++) if (mask[y * w + x]) { x0 = Math.min(x0, x); x1 = Math.max(x1, x + 1); }
    return [x0, x1];
  };
  const [x0, x1] = extent(top, y1);
  const [fx0, fx1] = extent(top, bottom);
  return { x0, y0: top, x1, y1, shoulderY, headWidth: rowCount[widestY], fgBox: { x0: fx0, y0: top, x1: fx1, y1: bottom } };
}

/** Sub-box of `box` by fractions: sub(box, fx0, fy0, fx1, fy1). */
export function sub(box, fx0, fy0, fx1, fy1) {
  const W = box.x1 - box.x0;
  const H = box.y1 - box.y0;
  return { x0: Math.round(box.x0 + fx0 * W), y0: Math.round(box.y0 + fy0 * H),
    x1: Math.round(box.x0 + fx1 * W), y1: Math.round(box.y0 + fy1 * H) };
}

/**
 * Difference of two images inside `box`: mean over pixels of (|ΔR|+|ΔG|+|ΔB|)/3, the largest per-pixel
 * value, and how many pixels changed by more than `changedTol` in some channel.
 */
export function diff(a, b, box = { x0: 0, y0: 0, x1: a.width, y1: a.height }, changedTol = 24) {
  let sum = 0, max = 0, changed = 0, n = 0;
  for (let y = box.y0; y < box.y1; y++) {
    for (let x = box.x0; x < box.x1; x++) {
      const i = 4 * (y * a.width + x);
      const dr = Math.abs(a.px[i] - b.px[i]), dg = Math.abs(a.px[i + 1] - b.px[i + 1]), db = Math.abs(a.px[i + 2] - b.px[i + 2]);
      const d = (dr + dg + db) / 3;
      sum += d; n++;
      if (d > max) max = d;
      if (Math.max(dr, dg, db) > changedTol) changed++;
    }
  }
  return { mean: n ? +(sum / n).toFixed(3) : 0, max: +max.toFixed(1), changed, pixels: n };
}

/** Bounding box of the pixels that changed by more than `tol` (where an expression acted), or null. */
export function changedBox(a, b, tol = 24) {
  let x0 = a.width, y0 = a.height, x1 = -1, y1 = -1;
  for (let y = 0; y < a.height; y++) {
    for (let x = 0; x < a.width; x++) {
      const i = 4 * (y * a.width + x);
      if (Math.max(Math.abs(a.px[i] - b.px[i]), Math.abs(a.px[i + 1] - b.px[i + 1]), Math.abs(a.px[i + 2] - b.px[i + 2])) > tol) {
        x0 = Math.min(x0, x); y0 = Math.min(y0, y); x1 = Math.max(x1, x + 1); y1 = Math.max(y1, y + 1);
      }
    }
  }
  return x1 < 0 ? null : { x0, y0, x1, y1 };
}

/**
 * How far the content of `box` moved down from image a to image b: the vertical shift dy (pixels, -max..max) that
 * best matches b's box to a's box moved by dy (least mean |ΔRGB|), e.g. the face moving down in a nod.
 * @returns {{dy: number, error: number, still: number}} error at dy, and at dy = 0 for comparison
 */
export function verticalShift(a, b, box, max = 20) {
  const cost = (dy) => {
    let sum = 0, n = 0;
    for (let y = Math.max(box.y0, box.y0 + dy); y < Math.min(box.y1, box.y1 + dy); y++) {
      for (let x = box.x0; x < box.x1; x++) {
        const i = 4 * (y * a.width + x), j = 4 * ((y - dy) * a.width + x);
        sum += Math.abs(b.px[i] - a.px[j]) + Math.abs(b.px[i + 1] - a.px[j + 1]) + Math.abs(b.px[i + 2] - a.px[j + 2]);
        n++;
      }
    }
    return n ? sum / (3 * n) : Infinity;
  };
  let best = 0;
  for (let dy = -max; dy <= max; dy++) if (cost(dy) < cost(best)) best = dy;
  return { dy: best, error: +cost(best).toFixed(3), still: +cost(0).toFixed(3) };
}
