// A small PNG writer (node:zlib only): 8-bit RGB, the best of the five row filters per row, zlib level 9. The
// browser's own encoder keeps the alpha channel and compresses for speed; for the README's images this one is
// ~30 % smaller, and `levels` (below 256) posterizes the colours for another large saving at little visible cost.
import { deflateSync } from "node:zlib";

const CRC_TABLE = new Int32Array(256).map((_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c;
});

function crc32(bytes) {
  let c = -1;
  for (const b of bytes) c = CRC_TABLE[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ -1) >>> 0;
}

function chunk(type, data) {
  const out = Buffer.alloc(12 + data.length);
  out.writeUInt32BE(data.length, 0);
  out.write(type, 4, "latin1");
  Buffer.from(data).copy(out, 8);
  out.writeUInt32BE(crc32(out.subarray(4, 8 + data.length)), 8 + data.length);
  return out;
}

function paeth(a, b, c) {
  const p = a + b - c;
  const pa = Math.abs(p - a), pb = Math.abs(p - b), pc = Math.abs(p - c);
  return pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
}

/**
 * Encode RGBA pixels (alpha dropped) as a PNG.
 * @param {{width: number, height: number, px: Uint8Array|Uint8ClampedArray}} img
 * @param {{levels?: number}} [options] levels per channel (2..256): fewer compress better (posterized, with a
 *   4×4 ordered dither so gradients do not band)
 * @returns {Buffer}
 */
export function encodePng({ width, height, px }, { levels = 256 } = {}) {
  const stride = width * 3;
  const rgb = new Uint8Array(stride * height);
  const BAYER = [0, 8, 2, 10, 12, 4, 14, 6, 3, 11, 1, 9, 15, 7, 13, 5];
  const step = 255 / (levels - 1);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const i = 4 * (y * width + x);
      const o = y * stride + 3 * x;
      const dither = levels < 256 ? (BAYER[(y & 3) * 4 + (x & 3)] + 0.5) / 16 - 0.5 : 0;
      for (let ch = 0; ch < 3; ch++) {
        const v = px[i + ch];
        rgb[o + ch] = levels < 256 ? Math.min(255, Math.max(0, Math.round(Math.round(v / step + dither) * step))) : v;
      }
    }
  }
  // Filtered scanlines: per row the filter with the smallest sum of |signed bytes| (the usual heuristic).
  const filtered = Buffer.alloc((stride + 1) * height);
  const candidate = new Uint8Array(stride);
  for (let y = 0; y < height; y++) {
    const row = rgb.subarray(y * stride, (y + 1) * stride);
    const up = y ? rgb.subarray((y - 1) * stride, y * stride) : new Uint8Array(stride);
    let bestSum = Infinity;
    for (let f = 0; f < 5; f++) {
      let sum = 0;
      for (let x = 0; x < stride; x++) {
        const a = x >= 3 ? row[x - 3] : 0, b = up[x], c = x >= 3 ? up[x - 3] : 0;
        const pred = f === 0 ? 0 : f === 1 ? a : f === 2 ? b : f === 3 ? (a + b) >> 1 : paeth(a, b, c);
        const v = (row[x] - pred) & 0xff;
        candidate[x] = v;
        sum += v < 128 ? v : 256 - v;
      }
      if (sum < bestSum) {
        bestSum = sum;
        filtered[y * (stride + 1)] = f;
        filtered.set(candidate, y * (stride + 1) + 1);
      }
    }
  }
  const header = Buffer.alloc(13);
  header.writeUInt32BE(width, 0);
  header.writeUInt32BE(height, 4);
  header.set([8, 2, 0, 0, 0], 8); // 8 bits, RGB, deflate, adaptive filtering, no interlace
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk("IHDR", header),
    chunk("IDAT", deflateSync(filtered, { level: 9, memLevel: 9 })),
    chunk("IEND", Buffer.alloc(0)),
  ]);
}
