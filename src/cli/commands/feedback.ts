import type { Command } from "../command.ts";

export const command: Command = {
  summary: "human feedback collection: serve the labeling app, add users, import items, export preferences",
  async run(argv) {
    const { feedbackCli } = await import("../../feedback/cli.ts");
    return feedbackCli(argv);
  },
};
