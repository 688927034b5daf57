"""PyTorch side of `npm run bench:compare`: the standard benchmark model timed on CPU.

GPT-2 style (pre-LN, learned positions, biases, gelu tanh, untied head): vocab 512, context 128,
d_model 256, 4 layers, 4 heads, MLP 1024; batch 8 x 128; Adam lr 1e-3. Prints one JSON object.

    OPENBLAS_NUM_THREADS=2 /usr/bin/python3 scripts/reference/bench_torch.py [--runs 10] [--warmup 2]
"""
import argparse
import json
import math
import os
import resource
import statistics
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "2")  # must be set before torch loads OpenBLAS
import torch
import torch.nn as nn
import torch.nn.functional as F

VOCAB, CTX, D, LAYERS, HEADS, MLP = 512, 128, 256, 4, 4, 1024
BATCH, PROMPT, NEW_TOKENS = 8, 64, 64


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.ln_1 = nn.LayerNorm(D)
        self.c_attn = nn.Linear(D, 3 * D)
        self.c_proj = nn.Linear(D, D)
        self.ln_2 = nn.LayerNorm(D)
        self.c_fc = nn.Linear(D, MLP)
        self.mlp_proj = nn.Linear(MLP, D)

    def forward(self, x, cache=None, pos=0):
        """x: [B, T, D]. With a cache (k, v: [B, nH, CTX, hd]) the new keys/values go in at pos."""
        Bn, Tn, _ = x.shape
        hd = D // HEADS
        q, k, v = self.c_attn(self.ln_1(x)).split(D, dim=-1)
        q, k, v = (t.view(Bn, Tn, HEADS, hd).transpose(1, 2) for t in (q, k, v))  # [B, nH, T, hd]
        if cache is not None:
            cache[0][:, :, pos:pos + Tn] = k
            cache[1][:, :, pos:pos + Tn] = v
            k, v = cache[0][:, :, :pos + Tn], cache[1][:, :, :pos + Tn]  # [B, nH, S, hd]
        S = k.shape[2]
        att = (q @ k.transpose(-1, -2)) / math.sqrt(hd)  # [B, nH, T, S]
        causal = torch.ones(Tn, S, dtype=torch.bool).tril(diagonal=S - Tn)  # query i sits at S-T+i
        att = att.masked_fill(~causal, float("-inf")).softmax(dim=-1)
        y = (att @ v).transpose(1, 2).reshape(Bn, Tn, D)
        x = x + self.c_proj(y)
        return x + self.mlp_proj(F.gelu(self.c_fc(self.ln_2(x)), approximate="tanh"))


class GPT(nn.Module):
    def __init__(self):
        super().__init__()
        self.wte = nn.Embedding(VOCAB, D)
        self.wpe = nn.Embedding(CTX, D)
        self.h = nn.ModuleList(Block() for _ in range(LAYERS))
        self.ln_f = nn.LayerNorm(D)
        self.lm_head = nn.Linear(D, VOCAB, bias=False)
        for p in self.parameters():
            if p.dim() == 2:
                nn.init.normal_(p, std=0.02)

    def forward(self, idx, caches=None, pos=0):
        Tn = idx.shape[1]
        x = self.wte(idx) + self.wpe(torch.arange(pos, pos + Tn))  # [B, T, D]
        for i, block in enumerate(self.h):
            x = block(x, None if caches is None else caches[i], pos)
        return self.lm_head(self.ln_f(x))  # [B, T, V]


@torch.no_grad()
def generate(model, prompt):
    """Greedy, KV-cached: one prefill over the prompt, then one single-token step per new token."""
    Bn = prompt.shape[0]
    caches = [(torch.empty(Bn, HEADS, CTX, D // HEADS), torch.empty(Bn, HEADS, CTX, D // HEADS)) for _ in range(LAYERS)]
    next_token = model(prompt, caches, 0)[:, -1].argmax(-1, keepdim=True)  # [B, 1]
    out = [next_token]
    for pos in range(PROMPT, PROMPT + NEW_TOKENS - 1):
        next_token = model(next_token, caches, pos)[:, -1].argmax(-1, keepdim=True)
        out.append(next_token)
    return torch.cat(out, dim=1)  # [B, NEW_TOKENS]


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
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    model = GPT()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = torch.randint(0, VOCAB, (BATCH, CTX))
    y = torch.randint(0, VOCAB, (BATCH, CTX))
    prompt = torch.randint(0, VOCAB, (BATCH, PROMPT))

    def train_step():
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x).view(-1, VOCAB), y.view(-1))
        loss.backward()
        opt.step()

    def forward():
        with torch.no_grad():
            model(x)

    # sanity check: the cached decode must agree with a full forward over the same tokens
    with torch.no_grad():
        tokens = generate(model, prompt)
        logits = model(torch.cat([prompt, tokens[:, :-1]], dim=1))[:, PROMPT - 1:]  # [B, NEW_TOKENS, V]
        chosen = logits.gather(-1, tokens[..., None]).squeeze(-1)
        assert (chosen >= logits.max(-1).values - 1e-4).all(), "KV-cached generation disagrees with the full forward"

    result = {
        "train_step_ms": median_ms(train_step, args.runs, args.warmup),
        "forward_ms": median_ms(forward, args.runs, args.warmup),
        "generate_64_ms": median_ms(lambda: generate(model, prompt), args.runs, args.warmup),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "torch_version": torch.__version__,
        "threads": torch.get_num_threads(),
        "openblas_threads": int(os.environ["OPENBLAS_NUM_THREADS"]),
        "openblas_coretype": os.environ.get("OPENBLAS_CORETYPE", "detected"),
        "runs": args.runs,
        "warmup": args.warmup,
        "params": sum(p.numel() for p in model.parameters()),
    }
    print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in result.items()}))


if __name__ == "__main__":
    main()
