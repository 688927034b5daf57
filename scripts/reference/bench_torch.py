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

With --config CONFIG.json --use_peft: the LoRA DPO step of `rlhf bench --config --use_peft`
(src/bench/dpo-workload.ts) alone, with LoRA written in plain PyTorch (PEFT is not installable
here): the model's weights frozen, a trainable A [r, in] (kaiming-uniform, a = sqrt 5, as PEFT
starts it) and B [out, r] (zeros) on each of PEFT's default target modules for the model type
(q_proj and v_proj for Llama and Qwen2, c_attn for GPT-2), r 16, alpha 32, no dropout (DPO's
disable_dropout); one pair, a chosen and a rejected row of a 128-token prompt + a 128-token
completion, in one forward pass (TRL's concatenated_forward); the reference's sequence log-probs
(the adapter off: B = 0) computed once before the timing; the sigmoid loss at beta 0.1; AdamW on A
and B only (lr 1e-6, TRL's DPOConfig default), gradients clipped at 1.

    OPENBLAS_NUM_THREADS=2 /usr/bin/python3 scripts/reference/bench_torch.py [--config PATH [--use_peft]] [--runs N] [--warmup N]
"""
import argparse
import json
import math
import os
import resource
import statistics
import sys
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "2")  # must be set before torch loads OpenBLAS
import torch
import torch.nn as nn
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


# TRL's LoRA defaults (ModelConfig) and PEFT's default target modules per model type.
LORA = {"r": 16, "alpha": 32}
LORA_TARGETS = {"llama": ["q_proj", "v_proj"], "qwen2": ["q_proj", "v_proj"], "gpt2": ["c_attn"]}
# The LoRA DPO step (src/bench/dpo-workload.ts): one pair of prompt + completion rows.
DPO = {"pairs": 1, "prompt": 128, "completion": 128, "beta": 0.1, "lr": 1e-6}


class LoraLinear(nn.Module):
    """PEFT's LoRA layer: the frozen linear plus (alpha / r) * B(A(x)); dropout off (nn.Identity in PEFT)."""

    def __init__(self, base, r, alpha):
        super().__init__()
        self.base = base
        self.lora_A = nn.Parameter(torch.empty(r, base.in_features))
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))
        self.lora_B = nn.Parameter(torch.zeros(base.out_features, r))
        self.scaling = alpha / r

    def forward(self, x):
        return self.base(x) + (x @ self.lora_A.t()) @ self.lora_B.t() * self.scaling


def add_lora(model, model_type):
    """Freezes every weight and puts a LoraLinear on each target module; returns the adapter's parameters."""
    for p in model.parameters():
        p.requires_grad_(False)
    targets = LORA_TARGETS[model_type]
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if name in targets and isinstance(child, nn.Linear):
                setattr(parent, name, LoraLinear(child, LORA["r"], LORA["alpha"]))
    adapter = [p for n, p in model.named_parameters() if "lora_" in n]
    assert adapter and all(p.requires_grad for p in adapter), "no LoRA target module found"
    return adapter, targets


def lora_dpo_step(model, adapter, vocab):
    """One DPO optimizer step of the adapter (a closure), as TRL's DPOTrainer takes it with precomputed reference log-probs."""
    B, P, C = DPO["pairs"], DPO["prompt"], DPO["completion"]
    prompt = torch.randint(0, vocab, (B, P))
    rows = torch.cat([torch.cat([prompt, torch.randint(0, vocab, (B, C))], 1) for _ in ("chosen", "rejected")])  # [2B, P+C]
    mask = torch.zeros(2 * B, P + C - 1)
    mask[:, P - 1:] = 1  # column i scores token i+1: the completion's tokens

    def sequence_logps():
        logp = F.log_softmax(model(rows)[:, :-1], -1).gather(-1, rows[:, 1:, None]).squeeze(-1)  # [2B, T-1]
        return (logp * mask).sum(-1)

    with torch.no_grad():
        ref = sequence_logps()  # B = 0: the adapter is off
    opt = torch.optim.AdamW(adapter, lr=DPO["lr"], betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)
    losses = []

    def step():
        opt.zero_grad(set_to_none=True)
        logps = sequence_logps()
        margin = (logps[:B] - ref[:B]) - (logps[B:] - ref[B:])
        loss = -F.logsigmoid(DPO["beta"] * margin).mean()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(adapter, 1.0)
        opt.step()
        losses.append(loss.item())

    return step, losses


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
    ap.add_argument("--use_peft", action="store_true", help="with --config: time the LoRA DPO step instead")
    ap.add_argument("--only", choices=["forward", "generate", "train"], help="time this workload alone (bench:compare --rollout_engine: generation)")
    args = ap.parse_args()
    if args.use_peft and args.config is None:
        ap.error("--use_peft needs --config")
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
    if args.use_peft:
        print(json.dumps(lora_result(model, config, vocab, args, runs, warmup)))
        return
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
    if args.only:
        order = [args.only]
    timed = {"train": ("train_step_ms", train_step), "forward": ("forward_ms", forward), "generate": ("generate_64_ms", generation)}
    timed = {name: timed[name] for name in order}
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


def lora_result(model, config, vocab, args, runs, warmup):
    """The LoRA DPO step timed, with the same metric names as `rlhf bench --config --use_peft`."""
    params = sum(p.numel() for p in model.parameters())
    adapter, targets = add_lora(model, config["model_type"])
    step, losses = lora_dpo_step(model, adapter, vocab)
    ms = median_ms(step, runs, warmup)
    # The adapter starts off (B = 0), so the first step's policy is the reference: loss ln 2.
    assert abs(losses[0] - math.log(2)) < 1e-4, f"first LoRA DPO loss {losses[0]}, expected ln 2"
    tokens = 2 * DPO["pairs"] * (DPO["prompt"] + DPO["completion"])
    result = {
        "dpo_step_ms": ms, "dpo_tokens_per_s": 1000 * tokens / ms,
        "lora": {"adapter_params": sum(p.numel() for p in adapter), "r": LORA["r"], "lora_alpha": LORA["alpha"], "target_modules": targets},
        "config": args.config, "model_type": config.get("model_type"),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "torch_version": torch.__version__, "threads": torch.get_num_threads(),
        "openblas_threads": int(os.environ["OPENBLAS_NUM_THREADS"]), "openblas_coretype": os.environ.get("OPENBLAS_CORETYPE", "detected"),
        "runs": runs, "warmup": warmup, "params": params,
    }
    return {k: round(v, 3) if isinstance(v, float) else v for k, v in result.items()}


if __name__ == "__main__":
    main()
