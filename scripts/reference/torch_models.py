"""Plain-PyTorch GPT-2, Llama and Qwen2 built from a Hugging Face config.json (no transformers), for
scripts/reference/bench_torch.py. Written from the architectures' semantics, in reading order:
norm, attention, MLP, block, model. Float32, CPU, no dropout; every model's forward takes an optional
KV cache and can compute the head on the last position only (what generation's prefill needs).

    model = model_from_config(json.load(open("configs/smollm2-135m.json")))
    logits = model(idx)                    # [B, T, V]
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F


def causal_attention(q, k, v):
    """q: [B, nH, T, hd], k and v: [B, nH, S, hd] with the T queries at the last T of the S keys."""
    Tn, S = q.shape[2], k.shape[2]
    att = (q @ k.transpose(-1, -2)) / math.sqrt(q.shape[-1])  # [B, nH, T, S]
    causal = torch.ones(Tn, S, dtype=torch.bool).tril(diagonal=S - Tn)  # query i sits at S-T+i
    att = att.masked_fill(~causal, float("-inf")).softmax(dim=-1)
    return att @ v  # [B, nH, T, hd]


def write_cache(cache, k, v, pos):
    """With a cache (k, v: [B, nKV, capacity, hd]) the new keys/values go in at pos; returns all so far."""
    if cache is None:
        return k, v
    Tn = k.shape[2]
    cache[0][:, :, pos:pos + Tn] = k
    cache[1][:, :, pos:pos + Tn] = v
    return cache[0][:, :, :pos + Tn], cache[1][:, :, :pos + Tn]  # [B, nKV, S, hd]


# --- GPT-2: learned positions, pre-LayerNorm, biases everywhere, GELU MLP --------------------------

class GPT2Block(nn.Module):
    def __init__(self, c):
        super().__init__()
        d = c["n_embd"]
        self.n_head = c["n_head"]
        self.ln_1 = nn.LayerNorm(d, eps=c["layer_norm_epsilon"])
        self.c_attn = nn.Linear(d, 3 * d)
        self.c_proj = nn.Linear(d, d)
        self.ln_2 = nn.LayerNorm(d, eps=c["layer_norm_epsilon"])
        self.c_fc = nn.Linear(d, c["n_inner"])
        self.mlp_proj = nn.Linear(c["n_inner"], d)
        self.gelu = "tanh" if c["activation_function"] in ("gelu_new", "gelu_pytorch_tanh") else "none"

    def forward(self, x, cache=None, pos=0):
        Bn, Tn, D = x.shape
        hd = D // self.n_head
        q, k, v = self.c_attn(self.ln_1(x)).split(D, dim=-1)
        q, k, v = (t.view(Bn, Tn, self.n_head, hd).transpose(1, 2) for t in (q, k, v))  # [B, nH, T, hd]
        k, v = write_cache(cache, k, v, pos)
        y = causal_attention(q, k, v).transpose(1, 2).reshape(Bn, Tn, D)
        x = x + self.c_proj(y)
        return x + self.mlp_proj(F.gelu(self.c_fc(self.ln_2(x)), approximate=self.gelu))


class GPT2(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.kv_heads, self.head_dim, self.n_layers = c["n_head"], c["n_embd"] // c["n_head"], c["n_layer"]
        self.wte = nn.Embedding(c["vocab_size"], c["n_embd"])
        self.wpe = nn.Embedding(c["n_positions"], c["n_embd"])
        self.h = nn.ModuleList(GPT2Block(c) for _ in range(c["n_layer"]))
        self.ln_f = nn.LayerNorm(c["n_embd"], eps=c["layer_norm_epsilon"])
        self.lm_head = nn.Linear(c["n_embd"], c["vocab_size"], bias=False)
        for p in self.parameters():
            if p.dim() == 2:
                nn.init.normal_(p, std=0.02)
        if c["tie_word_embeddings"]:
            self.lm_head.weight = self.wte.weight

    def forward(self, idx, caches=None, pos=0, last_only=False):
        Tn = idx.shape[1]
        x = self.wte(idx) + self.wpe(torch.arange(pos, pos + Tn))  # [B, T, D]
        for i, block in enumerate(self.h):
            x = block(x, None if caches is None else caches[i], pos)
        x = self.ln_f(x[:, -1:] if last_only else x)
        return self.lm_head(x)  # [B, T, V] ([B, 1, V] with last_only)


# --- Llama and Qwen2: RMSNorm, rotary positions (rope_theta), grouped-query attention, SwiGLU -----
# Qwen2 is Llama with biases on the q/k/v projections.

class RMSNorm(nn.Module):
    def __init__(self, d, eps):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(d))

    def forward(self, x):
        return self.weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps))


def rope_tables(positions, head_dim, theta):
    """cos, sin: [T, hd] for positions [T]; channel i pairs with channel i + hd/2 (rotate_half)."""
    inv_freq = 1.0 / theta ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim)  # [hd/2]
    freqs = positions[:, None].float() * inv_freq[None]  # [T, hd/2]
    emb = torch.cat([freqs, freqs], dim=-1)  # [T, hd]
    return emb.cos(), emb.sin()


def apply_rope(x, cos, sin):
    """x: [B, n, T, hd]."""
    x1, x2 = x.chunk(2, dim=-1)
    return x * cos + torch.cat([-x2, x1], dim=-1) * sin


class LlamaAttention(nn.Module):
    def __init__(self, c, qkv_bias):
        super().__init__()
        d, self.n_head, self.n_kv, self.hd = c["hidden_size"], c["num_attention_heads"], c["num_key_value_heads"], c["head_dim"]
        self.q_proj = nn.Linear(d, self.n_head * self.hd, bias=qkv_bias)
        self.k_proj = nn.Linear(d, self.n_kv * self.hd, bias=qkv_bias)
        self.v_proj = nn.Linear(d, self.n_kv * self.hd, bias=qkv_bias)
        self.o_proj = nn.Linear(self.n_head * self.hd, d, bias=False)

    def forward(self, x, cos, sin, cache=None, pos=0):
        Bn, Tn, _ = x.shape
        q = self.q_proj(x).view(Bn, Tn, self.n_head, self.hd).transpose(1, 2)  # [B, nH, T, hd]
        k = self.k_proj(x).view(Bn, Tn, self.n_kv, self.hd).transpose(1, 2)  # [B, nKV, T, hd]
        v = self.v_proj(x).view(Bn, Tn, self.n_kv, self.hd).transpose(1, 2)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        k, v = write_cache(cache, k, v, pos)  # [B, nKV, S, hd]
        rep = self.n_head // self.n_kv  # kv head j serves query heads j*rep .. (j+1)*rep-1
        k, v = k.repeat_interleave(rep, dim=1), v.repeat_interleave(rep, dim=1)  # [B, nH, S, hd]
        y = causal_attention(q, k, v).transpose(1, 2).reshape(Bn, Tn, self.n_head * self.hd)
        return self.o_proj(y)


class LlamaMLP(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.gate_proj = nn.Linear(c["hidden_size"], c["intermediate_size"], bias=False)
        self.up_proj = nn.Linear(c["hidden_size"], c["intermediate_size"], bias=False)
        self.down_proj = nn.Linear(c["intermediate_size"], c["hidden_size"], bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class LlamaBlock(nn.Module):
    def __init__(self, c, qkv_bias):
        super().__init__()
        self.input_layernorm = RMSNorm(c["hidden_size"], c["rms_norm_eps"])
        self.self_attn = LlamaAttention(c, qkv_bias)
        self.post_attention_layernorm = RMSNorm(c["hidden_size"], c["rms_norm_eps"])
        self.mlp = LlamaMLP(c)

    def forward(self, x, cos, sin, cache=None, pos=0):
        x = x + self.self_attn(self.input_layernorm(x), cos, sin, cache, pos)
        return x + self.mlp(self.post_attention_layernorm(x))


class Llama(nn.Module):
    def __init__(self, c, qkv_bias=False):
        super().__init__()
        self.kv_heads, self.head_dim, self.n_layers, self.theta = c["num_key_value_heads"], c["head_dim"], c["num_hidden_layers"], c["rope_theta"]
        self.embed_tokens = nn.Embedding(c["vocab_size"], c["hidden_size"])
        self.layers = nn.ModuleList(LlamaBlock(c, qkv_bias) for _ in range(c["num_hidden_layers"]))
        self.norm = RMSNorm(c["hidden_size"], c["rms_norm_eps"])
        self.lm_head = nn.Linear(c["hidden_size"], c["vocab_size"], bias=False)
        for p in self.parameters():
            if p.dim() == 2:
                nn.init.normal_(p, std=0.02)
        if c["tie_word_embeddings"]:
            self.lm_head.weight = self.embed_tokens.weight

    def forward(self, idx, caches=None, pos=0, last_only=False):
        Tn = idx.shape[1]
        cos, sin = rope_tables(torch.arange(pos, pos + Tn), self.head_dim, self.theta)  # [T, hd]
        x = self.embed_tokens(idx)  # [B, T, D]
        for i, block in enumerate(self.layers):
            x = block(x, cos, sin, None if caches is None else caches[i], pos)
        x = self.norm(x[:, -1:] if last_only else x)
        return self.lm_head(x)  # [B, T, V] ([B, 1, V] with last_only)


# --- config.json -> model, with transformers' defaults ------------------------------------------

def model_from_config(cfg):
    """A model from a config.json dict; refuses settings these implementations do not have."""
    kind = cfg.get("model_type")
    get = lambda k, default: default if cfg.get(k) is None else cfg[k]
    if kind == "gpt2":
        n_embd = get("n_embd", 768)
        c = {
            "vocab_size": get("vocab_size", 50257), "n_positions": get("n_positions", 1024), "n_embd": n_embd,
            "n_layer": get("n_layer", 12), "n_head": get("n_head", 12), "n_inner": get("n_inner", 4 * n_embd),
            "activation_function": get("activation_function", "gelu_new"), "layer_norm_epsilon": get("layer_norm_epsilon", 1e-5),
            "tie_word_embeddings": get("tie_word_embeddings", True),
        }
        return GPT2(c)
    if kind in ("llama", "qwen2"):
        if cfg.get("rope_scaling") is not None:
            raise ValueError("rope_scaling is not implemented in the torch reference")
        if cfg.get("use_sliding_window"):
            raise ValueError("use_sliding_window is not implemented in the torch reference")
        hidden, heads = get("hidden_size", 4096), get("num_attention_heads", 32)
        c = {
            "vocab_size": get("vocab_size", 32000), "hidden_size": hidden, "intermediate_size": get("intermediate_size", 11008),
            "num_hidden_layers": get("num_hidden_layers", 32), "num_attention_heads": heads,
            "num_key_value_heads": get("num_key_value_heads", heads), "head_dim": get("head_dim", hidden // heads),
            "rms_norm_eps": get("rms_norm_eps", 1e-6), "rope_theta": get("rope_theta", 10000.0),
            "tie_word_embeddings": get("tie_word_embeddings", False),
        }
        return Llama(c, qkv_bias=kind == "qwen2")
    raise ValueError(f"model_type {kind!r} is not implemented in the torch reference (gpt2, llama, qwen2)")


def new_cache(model, batch, capacity):
    """One (k, v) pair per layer, [B, nKV, capacity, hd] each."""
    shape = (batch, model.kv_heads, capacity, model.head_dim)
    return [(torch.empty(shape), torch.empty(shape)) for _ in range(model.n_layers)]
