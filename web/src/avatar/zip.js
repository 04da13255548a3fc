// A minimal ZIP central-directory reader, just enough to check a LAM avatar .zip before handing it to the
// renderer (which swallows its own errors). No dependency: DataView + the browser's DecompressionStream.

const SIG_LOCAL = 0x04034b50;
const SIG_CENTRAL = 0x02014b50;
const SIG_END = 0x06054b50;

/** The four files a LAM avatar folder must hold (DESIGN.md §5). */
export const AVATAR_FILES = ["offset.ply", "skin.glb", "animation.glb", "vertex_order.json"];

/**
 * List the entries of a ZIP archive from its central directory.
 * @param {Uint8Array} bytes the whole archive
 * @returns {{name: string, dir: boolean, method: number, compressedSize: number, size: number, offset: number}[]}
 * @throws {Error} with a human message when the bytes are not a readable ZIP archive
 */
export function listZip(bytes) {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (bytes.length < 22 || (view.getUint32(0, true) !== SIG_LOCAL && view.getUint32(0, true) !== SIG_END)) {
    throw new Error("is not a ZIP file (it does not start with the PK signature)");
  }
  let end = -1; // the end-of-central-directory record sits in the last 22 + 65535 (comment) bytes
  for (let i = bytes.length - 22; i >= Math.max(0, bytes.length - 22 - 65535); i--) {
    if (view.getUint32(i, true) === SIG_END) { end = i; break; }
  }
  if (end < 0) throw new Error("is not a complete ZIP file (no end-of-central-directory record; truncated?)");
  const count = view.getUint16(end + 10, true);
  let p = view.getUint32(end + 16, true);
  if (p === 0xffffffff || count === 0xffff) throw new Error("is a ZIP64 archive, which is not supported");
  const utf8 = new TextDecoder();
  const entries = [];
  for (let i = 0; i < count; i++) {
    if (p + 46 > bytes.length || view.getUint32(p, true) !== SIG_CENTRAL) {
      throw new Error("has a corrupt ZIP central directory");
    }
    const nameLen = view.getUint16(p + 28, true);
    const name = utf8.decode(bytes.subarray(p + 46, p + 46 + nameLen));
    const external = view.getUint32(p + 38, true);
    entries.push({
      name,
      // as JSZip decides it: a trailing slash, or the DOS/Unix directory attribute bits
      dir: name.endsWith("/") || (external & 0x10) !== 0 || ((external >>> 16) & 0o170000) === 0o040000,
      method: view.getUint16(p + 10, true),
      compressedSize: view.getUint32(p + 20, true),
      size: view.getUint32(p + 24, true),
      offset: view.getUint32(p + 42, true),
    });
    p += 46 + nameLen + view.getUint16(p + 30, true) + view.getUint16(p + 32, true);
  }
  return entries;
}

/**
 * Read the first `maxBytes` (uncompressed) bytes of one entry.
 * @param {Uint8Array} bytes the whole archive
 * @param {{method: number, compressedSize: number, offset: number}} entry from {@link listZip}
 * @param {number} [maxBytes]
 * @returns {Promise<Uint8Array>}
 */
export async function readZipEntryHead(bytes, entry, maxBytes = 4096) {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const p = entry.offset;
  if (p + 30 > bytes.length || view.getUint32(p, true) !== SIG_LOCAL) throw new Error("has a corrupt local header");
  const start = p + 30 + view.getUint16(p + 26, true) + view.getUint16(p + 28, true);
  const data = bytes.subarray(start, start + entry.compressedSize);
  if (entry.method === 0) return data.subarray(0, maxBytes);
  if (entry.method !== 8) throw new Error(`uses ZIP compression method ${entry.method} (only store/deflate)`);
  const reader = new Blob([data]).stream().pipeThrough(new DecompressionStream("deflate-raw")).getReader();
  const chunks = [];
  let total = 0;
  try {
    while (total < maxBytes) {
      const { done, value } = await reader.read();
      if (done) break;
      chunks.push(value);
      total += value.length;
    }
  } finally {
    reader.cancel().catch(() => {});
  }
  const out = new Uint8Array(Math.min(total, maxBytes));
  let o = 0;
  for (const c of chunks) {
    out.set(c.subarray(0, out.length - o), o);
    o += Math.min(c.length, out.length - o);
  }
  return out;
}

/**
 * Check that `bytes` is an avatar archive the LAM renderer can load, as the renderer reads it: its folder is
 * the LAST directory entry of the archive (JSZip, createFolders off), and that folder holds the four files.
 * @param {Uint8Array} bytes
 * @returns {Promise<{folder: string, splats: number}>}
 * @throws {Error} whose message completes the sentence "the avatar file …"
 */
export async function checkAvatarZip(bytes) {
  const entries = listZip(bytes);
  const dirs = entries.filter((e) => e.dir);
  if (dirs.length === 0) {
    throw new Error("has no folder entry: the LAM renderer needs one directory (e.g. 'name/') holding " +
      AVATAR_FILES.join(", "));
  }
  const folder = dirs[dirs.length - 1].name.replace(/\/$/, "");
  const byName = new Map(entries.map((e) => [e.name, e]));
  const missing = AVATAR_FILES.filter((f) => !byName.has(`${folder}/${f}`));
  if (missing.length) throw new Error(`is missing ${missing.map((f) => `${folder}/${f}`).join(", ")}`);
  const head = new TextDecoder("latin1").decode(await readZipEntryHead(bytes, byName.get(`${folder}/offset.ply`)));
  const vertices = /^ply\r?\n[\s\S]*?element vertex (\d+)/.exec(head);
  if (!vertices || !head.includes("end_header")) throw new Error(`has a ${folder}/offset.ply that is not a PLY file`);
  if (!head.includes("format binary_little_endian")) throw new Error(`has a ${folder}/offset.ply that is not binary little-endian`);
  const glb = await readZipEntryHead(bytes, byName.get(`${folder}/skin.glb`), 4);
  if (new TextDecoder("latin1").decode(glb) !== "glTF") throw new Error(`has a ${folder}/skin.glb that is not a GLB file`);
  return { folder, splats: Number(vertices[1]) };
}
