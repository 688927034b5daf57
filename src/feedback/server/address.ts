// Listening addresses as a user reads them: loopback or not, and the URLs a client can use.
import { networkInterfaces } from "node:os";

export const isLoopback = (host: string) => host === "localhost" || host === "::1" || /^127\./.test(host);
export const urlHost = (host: string) => (host.includes(":") ? `[${host}]` : host);

// The addresses a client can use: the bound one, or for 0.0.0.0 / :: each interface's.
export function reachableAt(host: string, port: number, scheme: string): string[] {
  if (host !== "0.0.0.0" && host !== "::") return [`${scheme}://${urlHost(host)}:${port}`];
  const all = Object.values(networkInterfaces()).flat().filter((i) => i && (host === "::" || i.family === "IPv4"));
  return all.map((i) => `${scheme}://${urlHost(i!.address)}:${port}`);
}
