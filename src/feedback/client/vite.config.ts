// Builds the labeling web app into dist/feedback-client/, which the feedback server serves at /.
// `vite --config src/feedback/client/vite.config.ts` runs it in development against a server
// started with `rlhf feedback serve` on port 8080.
import { fileURLToPath } from "node:url";
import { defineConfig } from "vite";

export default defineConfig({
  root: fileURLToPath(new URL(".", import.meta.url)),
  base: "/",
  build: {
    outDir: fileURLToPath(new URL("../../../dist/feedback-client/", import.meta.url)),
    emptyOutDir: true,
    target: "es2022",
  },
  server: { proxy: { "/api": "http://127.0.0.1:8080" } },
});
