// A tiny static HTTP server on 127.0.0.1 for the renderer tests and the FPS benchmark: serves a directory
// (web/dist) at "/", extra files at fixed paths (e.g. "/avatars/p2-1.zip" → a fixture), extra directories
// under a prefix (e.g. "/three/" → three's build folder) and in-memory pages. Loopback only.
import { createServer } from "node:http";
import { createReadStream, statSync } from "node:fs";
import { extname, join, normalize } from "node:path";

const TYPES = {
  ".html": "text/html; charset=utf-8", ".js": "text/javascript", ".mjs": "text/javascript", ".css": "text/css",
  ".json": "application/json", ".zip": "application/zip", ".wasm": "application/wasm", ".png": "image/png",
  ".svg": "image/svg+xml",
};

/**
 * @param {{root: string, files?: Record<string, string>, dirs?: Record<string, string>,
 *          pages?: Record<string, {type: string, body: string}>}} opts
 * @returns {Promise<{url: string, requests: string[], close: () => Promise<void>}>}
 */
export async function startServer({ root, files = {}, dirs = {}, pages = {} }) {
  const requests = [];
  const server = createServer((req, res) => {
    const path = decodeURIComponent(new URL(req.url, "http://x").pathname);
    requests.push(`${req.method} ${path}`);
    if (pages[path]) {
      requests[requests.length - 1] += " 200";
      res.writeHead(200, { "content-type": pages[path].type });
      res.end(pages[path].body);
      return;
    }
    let file = files[path];
    if (!file) {
      const prefix = Object.keys(dirs).find((d) => path.startsWith(d));
      const rel = normalize(prefix ? path.slice(prefix.length - 1) : path === "/" ? "/index.html" : path);
      file = rel.includes("..") ? null : join(prefix ? dirs[prefix] : root, rel);
    }
    let st = null;
    try { st = statSync(file); } catch { /* 404 below */ }
    if (!st?.isFile()) {
      requests[requests.length - 1] += " 404";
      res.writeHead(404, { "content-type": "application/json" });
      res.end(JSON.stringify({ error: "not_found", message: `${path} not found` }));
      return;
    }
    // Validators like the runtime's FileResponse sends (ETag, Last-Modified; no Cache-Control).
    const etag = `"${st.size.toString(16)}-${Math.floor(st.mtimeMs).toString(16)}"`;
    if (req.headers["if-none-match"] === etag) {
      requests[requests.length - 1] += " 304";
      res.writeHead(304, { etag });
      res.end();
      return;
    }
    requests[requests.length - 1] += " 200";
    res.writeHead(200, { "content-type": TYPES[extname(file)] || "application/octet-stream", "content-length": st.size,
      etag, "last-modified": st.mtime.toUTCString() });
    if (req.method === "HEAD") res.end();
    else createReadStream(file).pipe(res);
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    requests,
    close: () => new Promise((resolve) => { server.closeAllConnections?.(); server.close(() => resolve()); }),
  };
}
