// Builds the dashboard page into dist/dashboard-client/, which `rlhf dashboard` serves at /.
// `vite --config src/dashboard/client/vite.config.ts` runs it in development against a dashboard
// started with `rlhf dashboard RUN_DIR… --port 8081`.
import { fileURLToPath } from "node:url";
import { defineConfig } from "vite";

export default defineConfig({
  root: fileURLToPath(new URL(".", import.meta.url)),
  base: "/",
  build: {
    outDir: fileURLToPath(new URL("../../../dist/dashboard-client/", import.meta.url)),
    emptyOutDir: true,
    target: "es2022",
  },
  server: { proxy: { "/api": "http://127.0.0.1:8081" } },
});
