#!/usr/bin/env node
// Entry point for `npx rlhf`: loads the TypeScript sources through tsx, so no build step is needed.
import { register } from "tsx/esm/api";
register();
const { main } = await import("../src/cli/main.ts");
await main(process.argv.slice(2));
// Long-running commands (the feedback server) return only when they are done, so exiting here is
// safe, and it ends idle handles (kernel worker threads) that would keep the process alive.
process.exit(process.exitCode ?? 0);
