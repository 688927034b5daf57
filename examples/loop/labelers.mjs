// Simulated people for examples/loop/run.sh: each labeler signs in to the feedback server with its
// API token and answers every pairwise item it is given, through the same HTTP API the web UI uses
// (GET /api/projects, GET .../next, POST /api/items/:id/answers). Its preference is the lexicon
// score of examples/stories/lexicon-reward.mjs, which the trainers never see, read with noise:
// labeler i picks the completion with the higher score plus Gaussian noise of sd NOISE[i] on each
// side, so close calls are often wrong and clear ones rarely. Seeded: the same items in the same
// order get the same answers.
//
//   node examples/loop/labelers.mjs URL NAME=TOKEN [NAME=TOKEN ...]     (runs until killed)
import { lexiconScore } from "../stories/lexicon-reward.mjs";

const [url, ...accounts] = process.argv.slice(2);
if (!url || accounts.length === 0) {
  console.error("usage: node examples/loop/labelers.mjs URL NAME=TOKEN [NAME=TOKEN ...]");
  process.exit(2);
}
const NOISE = [0.02, 0.04, 0.06];

/** mulberry32: a small seeded generator, one per labeler. */
function rng(seed) {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const gaussian = (u) => Math.sqrt(-2 * Math.log(1 - u())) * Math.cos(2 * Math.PI * u());

async function api(token, method, path, body) {
  const res = await fetch(url + path, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body ? { "content-type": "application/json" } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${await res.text()}`);
  return res.status === 204 ? null : res.json();
}

async function label(name, token, noise, seed) {
  const u = rng(seed);
  let answered = 0;
  for (;;) {
    let worked = false;
    for (const project of await api(token, "GET", "/api/projects")) {
      if (project.progress.remaining === 0) continue;
      for (let item; (item = await api(token, "GET", `/api/projects/${project.id}/next`)); ) {
        const [a, b] = item.responses;
        const better = lexiconScore(a.text) + noise * gaussian(u) >= lexiconScore(b.text) + noise * gaussian(u) ? [a, b] : [b, a];
        await api(token, "POST", `/api/items/${item.id}/answers`, { request_id: `${name}-${item.id}`, ranking: better.map((r) => r.id) });
        answered++;
        worked = true;
      }
    }
    if (worked) console.error(`labelers: ${name} has answered ${answered} items`);
    await new Promise((r) => setTimeout(r, 1000));
  }
}

await Promise.all(accounts.map((account, i) => {
  const [name, token] = account.split("=");
  return label(name, token, NOISE[i % NOISE.length], 1000 + i);
}));
