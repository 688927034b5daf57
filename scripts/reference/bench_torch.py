"""PyTorch side of `npm run bench:compare`: the benchmark's three workloads timed on CPU.

Without --config: the standard benchmark model (configs/bench-standard.json: GPT-2 style, pre-LN,
learned positions, biases, gelu tanh, untied head; vocab 512, context 128, d_model 256, 4 layers,
4 heads, MLP 1024); batch 8 x 128; Adam lr 1e-3; 10 runs after 2 warm-ups.

With --config CONFIG.json: that model's shape with random weights (plain-PyTorch GPT-2, Llama or
Qwen2 from scripts/reference/torch_models.py), the workloads of `rlhf bench --config`
(src/bench/workloads.ts, realSizeSpec): a forward pass over 1 x 512, an SFT step on 1 x 512 (AdamW,
lr 2e-5, no weight decay, gradients clipped at 1), and greedy KV-cached generation of 64 tokens for
8 sequences after 16-token prompts (the prefill computes the head on the last position only);
3 runs after 1 warm-up. Prints one JSON object with the same metric names as ours.

    OPENBLAS_NUM_THREADS=2 /usr/bin/python3 scripts/reference/bench_torch.py [--config PATH] [--runs N] [--warmup N]
"""
import argparse
import json
import os
import resource
import statistics
import sys
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "2")  # must be set before torch loads OpenBLAS
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_models import model_from_config, new_cache  # noqa: E402

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")

# The standard benchmark keeps its original policy (Adam, no clipping, every position a random
# target, the prefill's head over the whole prompt) so its numbers stay comparable with earlier runs.
STANDARD = {
    "train": {"batch": 8, "length": 128}, "forward": {"batch": 8, "length": 128},
    "generate": {"batch": 8, "prompt": 64, "new_tokens": 64, "prefill_last_only": False},
    "runs": 10, "warmup": 2,
}
REAL_SIZE = {
    "train": {"batch": 1, "length": 512}, "forward": {"batch": 1, "length": 512},
    "generate": {"batch": 8, "prompt": 16, "new_tokens": 64, "prefill_last_only": True},
    "runs": 3, "warmup": 1,
}


@torch.no_grad()
def generate(model, prompt, new_tokens, last_only):
    """Greedy, KV-cached: one prefill over the prompt, then one single-token step per new token."""
    Bn, P = prompt.shape
    caches = new_cache(model, Bn, P + new_tokens)
    next_token = model(prompt, caches, 0, last_only=last_only)[:, -1].argmax(-1, keepdim=True)  # [B, 1]
    out = [next_token]
    for pos in range(P, P + new_tokens - 1):
        next_token = model(next_token, caches, pos)[:, -1].argmax(-1, keepdim=True)
        out.append(next_token)
    return torch.cat(out, dim=1)  # [B, new_tokens]


def median_ms(fn, runs, warmup):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", help="a model's config.json: time its shape (default: the standard benchmark model)")
    ap.add_argument("--runs", type=int)
    ap.add_argument("--warmup", type=int)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    real_size = args.config is not None
    spec = REAL_SIZE if real_size else STANDARD
    runs = spec["runs"] if args.runs is None else args.runs
    warmup = spec["warmup"] if args.warmup is None else args.warmup
    with open(args.config or os.path.join(ROOT, "configs", "bench-standard.json")) as f:
        config = json.load(f)
    model = model_from_config(config)
    vocab = model.lm_head.weight.shape[0]
    tr, fw, gen = spec["train"], spec["forward"], spec["generate"]
    x = torch.randint(0, vocab, (tr["batch"], tr["length"]))
    forward_x = x if fw == tr else torch.randint(0, vocab, (fw["batch"], fw["length"]))
    prompt = torch.randint(0, vocab, (gen["batch"], gen["prompt"]))

    if real_size:
        # SFT: every next token a target; TRL's defaults for the optimizer and clipping.
        opt = torch.optim.AdamW(model.parameters(), lr=2e-5, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)

        def train_step():
            opt.zero_grad(set_to_none=True)
            logits = model(x)  # [B, T, V]
            loss = F.cross_entropy(logits[:, :-1].reshape(-1, vocab), x[:, 1:].reshape(-1))
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
    else:
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        y = torch.randint(0, vocab, (tr["batch"], tr["length"]))

        def train_step():
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(x).view(-1, vocab), y.view(-1))
            loss.backward()
            opt.step()

    def forward():
        with torch.no_grad():
            model(forward_x)

    def generation():
        generate(model, prompt, gen["new_tokens"], gen["prefill_last_only"])

    # sanity check: the cached decode must agree with a full forward over the same tokens
    with torch.no_grad():
        tokens = generate(model, prompt, gen["new_tokens"], gen["prefill_last_only"])
        logits = model(torch.cat([prompt, tokens[:, :-1]], dim=1))[:, gen["prompt"] - 1:]  # [B, new_tokens, V]
        chosen = logits.gather(-1, tokens[..., None]).squeeze(-1)
        assert (chosen >= logits.max(-1).values - 1e-4).all(), "KV-cached generation disagrees with the full forward"
        del logits, chosen

    result = {}
    # Ours runs training last at real sizes (it needs the most memory); the same order here.
    order = ["forward", "generate", "train"] if real_size else ["train", "forward", "generate"]
    timed = {"train": ("train_step_ms", train_step), "forward": ("forward_ms", forward), "generate": ("generate_64_ms", generation)}
    for name in order:
        metric, fn = timed[name]
        result[metric] = median_ms(fn, runs, warmup)
    if real_size:
        tokens_of = {"forward": fw["batch"] * fw["length"], "train": tr["batch"] * tr["length"], "generate": gen["batch"] * gen["new_tokens"]}
        for name, (metric, _) in timed.items():
            result[f"{name}_tokens_per_s"] = 1000 * tokens_of[name] / result[metric]
        result["config"] = args.config
        result["model_type"] = config.get("model_type")
    result.update({
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "torch_version": torch.__version__,
        "threads": torch.get_num_threads(),
        "openblas_threads": int(os.environ["OPENBLAS_NUM_THREADS"]),
        "openblas_coretype": os.environ.get("OPENBLAS_CORETYPE", "detected"),
        "runs": runs,
        "warmup": warmup,
        "params": sum(p.numel() for p in model.parameters()),
    })
    print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in result.items()}))


if __name__ == "__main__":
    main()
