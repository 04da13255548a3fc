// Builds the browser client into web/dist, which the runtime serves at "/".
import { fileURLToPath } from "node:url";
import { defineConfig } from "vite";

const page = (name) => fileURLToPath(new URL(name, import.meta.url));

export default defineConfig({
  base: "./",
  build: {
    outDir: "dist",
    emptyOutDir: true,
    target: "es2022",
    chunkSizeWarningLimit: 6000, // the LAM renderer bundles three.js + GaussianSplats3D (~4 MB)
    // Two pages: the app, and the renderer test page the browser tests and the FPS benchmark drive.
    // (Vite 8 bundles with Rolldown: `rolldownOptions` is the current name of `rollupOptions`.)
    rolldownOptions: {
      input: { main: page("index.html"), "render-test": page("render-test.html") },
    },
  },
});
