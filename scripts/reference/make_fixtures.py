"""Reference values from PyTorch for the tiny Llama, GPT-2, Qwen2 and Llama-3 fixtures (llm.c style).

Writes test/fixtures/{llama,gpt2,qwen2,llama3}-tiny.json: config, initial weights, a left-padded
batch, logits, masked-mean loss, every gradient, and 20 steps of AdamW losses. The models are plain
torch written to Hugging Face's semantics (transformers is not installed), with HF parameter names
and layouts so the fixture doubles as a checkpoint. Name fixtures to write only those:

    OPENBLAS_NUM_THREADS=2 /usr/bin/python3 scripts/reference/make_fixtures.py [qwen2-tiny llama3-tiny ...]
"""
import json
import math
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

torch.set_num_threads(1)
OUT_DIR = os.path.join(os.path.dirname(__file__), "..", "..", "test", "fixtures")
SEED = 1337
B, T = 2, 10
NEG = torch.finfo(torch.float32).min  # finite, so fully masked pad rows stay finite

LLAMA_CONFIG = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "vocab_size": 64,
    "hidden_size": 32,
    "intermediate_size": 48,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 8,
    "max_position_embeddings": 32,
    "rms_norm_eps": 1e-5,
    "rope_theta": 10000.0,
    "tie_word_embeddings": False,
    "hidden_act": "silu",
    "attention_bias": False,
    "mlp_bias": False,
    "bos_token_id": 1,
    "eos_token_id": 2,
    "torch_dtype": "float32",
}

GPT2_CONFIG = {
    "architectures": ["GPT2LMHeadModel"],
    "model_type": "gpt2",
    "vocab_size": 64,
    "n_embd": 32,
    "n_layer": 2,
    "n_head": 4,
    "n_positions": 32,
    "n_inner": None,
    "activation_function": "gelu_new",
    "layer_norm_epsilon": 1e-5,
    "tie_word_embeddings": False,
    "bos_token_id": 0,
    "eos_token_id": 0,
    "torch_dtype": "float32",
}


# Qwen2 as Qwen2.5 configs write it: rope_theta 1e6, a tied head, sliding window off (so
# sliding_window and max_window_layers are unused, as in transformers).
QWEN2_CONFIG = {
    "architectures": ["Qwen2ForCausalLM"],
    "model_type": "qwen2",
    "vocab_size": 64,
    "hidden_size": 32,
    "intermediate_size": 48,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 32,
    "max_window_layers": 2,
    "rms_norm_eps": 1e-6,
    "rope_theta": 1000000.0,
    "sliding_window": 32,
    "use_sliding_window": False,
    "tie_word_embeddings": True,
    "hidden_act": "silu",
    "attention_dropout": 0.0,
    "bos_token_id": 1,
    "eos_token_id": 2,
    "torch_dtype": "float32",
}

# Llama 3's rope_scaling at a size where all three of its frequency bands occur: with head_dim 8 and
# theta 100 the wavelengths 2*pi/f are 6.3, 19.9, 62.8 and 199; original_max_position_embeddings 32
# with low/high_freq_factor 1/4 keeps the first (< 8), interpolates the second, divides the last two.
LLAMA3_CONFIG = {
    **LLAMA_CONFIG,
    "rope_theta": 100.0,
    "max_position_embeddings": 256,
    "rope_scaling": {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                     "original_max_position_embeddings": 32, "rope_type": "llama3"},
    "eos_token_id": [2, 3],
}

# The real model's rope settings, for a check of the frequencies alone (Llama-3.2-1B's config.json).
LLAMA32_1B_ROPE = {"head_dim": 64, "rope_theta": 500000.0,
                   "rope_scaling": {"factor": 32.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                    "original_max_position_embeddings": 8192, "rope_type": "llama3"}}


# ----------------------------------------------------------------------------- parameters

def llama_shapes(c):
    D, F_, V, hd = c["hidden_size"], c["intermediate_size"], c["vocab_size"], c["head_dim"]
    nH, nKV = c["num_attention_heads"], c["num_key_value_heads"]
    shapes = {"model.embed_tokens.weight": [V, D]}
    for i in range(c["num_hidden_layers"]):
        p = f"model.layers.{i}."
        shapes[p + "input_layernorm.weight"] = [D]
        shapes[p + "self_attn.q_proj.weight"] = [nH * hd, D]  # [out, in], y = x @ W.T
        shapes[p + "self_attn.k_proj.weight"] = [nKV * hd, D]
        shapes[p + "self_attn.v_proj.weight"] = [nKV * hd, D]
        shapes[p + "self_attn.o_proj.weight"] = [D, nH * hd]
        shapes[p + "post_attention_layernorm.weight"] = [D]
        shapes[p + "mlp.gate_proj.weight"] = [F_, D]
        shapes[p + "mlp.up_proj.weight"] = [F_, D]
        shapes[p + "mlp.down_proj.weight"] = [D, F_]
    shapes["model.norm.weight"] = [D]
    shapes["lm_head.weight"] = [V, D]
    return shapes


def qwen2_shapes(c):
    D, F_, V = c["hidden_size"], c["intermediate_size"], c["vocab_size"]
    nH, nKV = c["num_attention_heads"], c["num_key_value_heads"]
    hd = D // nH
    shapes = {"model.embed_tokens.weight": [V, D]}
    for i in range(c["num_hidden_layers"]):
        p = f"model.layers.{i}."
        shapes[p + "input_layernorm.weight"] = [D]
        shapes[p + "self_attn.q_proj.weight"] = [nH * hd, D]  # q, k, v: nn.Linear with bias
        shapes[p + "self_attn.q_proj.bias"] = [nH * hd]
        shapes[p + "self_attn.k_proj.weight"] = [nKV * hd, D]
        shapes[p + "self_attn.k_proj.bias"] = [nKV * hd]
        shapes[p + "self_attn.v_proj.weight"] = [nKV * hd, D]
        shapes[p + "self_attn.v_proj.bias"] = [nKV * hd]
        shapes[p + "self_attn.o_proj.weight"] = [D, nH * hd]  # o_proj: no bias
        shapes[p + "post_attention_layernorm.weight"] = [D]
        shapes[p + "mlp.gate_proj.weight"] = [F_, D]
        shapes[p + "mlp.up_proj.weight"] = [F_, D]
        shapes[p + "mlp.down_proj.weight"] = [D, F_]
    shapes["model.norm.weight"] = [D]
    if not c["tie_word_embeddings"]:
        shapes["lm_head.weight"] = [V, D]
    return shapes


def gpt2_shapes(c):
    D, V, P = c["n_embd"], c["vocab_size"], c["n_positions"]
    Fi = c["n_inner"] or 4 * D
    shapes = {"transformer.wte.weight": [V, D], "transformer.wpe.weight": [P, D]}
    for i in range(c["n_layer"]):
        p = f"transformer.h.{i}."
        shapes[p + "ln_1.weight"] = [D]
        shapes[p + "ln_1.bias"] = [D]
        shapes[p + "attn.c_attn.weight"] = [D, 3 * D]  # Conv1D: y = x @ W + b
        shapes[p + "attn.c_attn.bias"] = [3 * D]
        shapes[p + "attn.c_proj.weight"] = [D, D]
        shapes[p + "attn.c_proj.bias"] = [D]
        shapes[p + "ln_2.weight"] = [D]
        shapes[p + "ln_2.bias"] = [D]
        shapes[p + "mlp.c_fc.weight"] = [D, Fi]
        shapes[p + "mlp.c_fc.bias"] = [Fi]
        shapes[p + "mlp.c_proj.weight"] = [Fi, D]
        shapes[p + "mlp.c_proj.bias"] = [D]
    shapes["transformer.ln_f.weight"] = [D]
    shapes["transformer.ln_f.bias"] = [D]
    shapes["lm_head.weight"] = [V, D]
    return shapes


def init_params(shapes, gen):
    """Large-ish random weights so that any mistake shows up in the numbers."""
    params = {}
    for name, shape in shapes.items():
        noise = torch.randn(shape, generator=gen)
        if name.endswith(".bias"):
            w = 0.1 * noise
        elif len(shape) == 1:  # norm weights
            w = 1.0 + 0.1 * noise
        else:  # matrices and embeddings
            w = 0.2 * noise
        params[name] = w.requires_grad_(True)
    return params


# ----------------------------------------------------------------------------- shared pieces

def attention_bias(attention_mask):
    """[B, 1, T, T] additive bias: key j is visible to query i iff j <= i and mask[j] == 1."""
    Tn = attention_mask.shape[1]
    causal = torch.tril(torch.ones(Tn, Tn, dtype=torch.bool))  # [T, T]
    allowed = causal[None, :, :] & attention_mask.bool()[:, None, :]  # [B, T, T]
    return allowed[:, None, :, :]


def attend(q, k, v, allowed):
    """q, k, v: [B, nH, T, hd]. Softmax in float32 with a finite mask value."""
    scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])  # [B, nH, T, T]
    scores = scores.masked_fill(~allowed, NEG)
    return torch.softmax(scores, dim=-1) @ v  # [B, nH, T, hd]


# ----------------------------------------------------------------------------- Llama

def rms_norm(x, weight, eps):
    x32 = x.float()
    return weight * (x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + eps))


def llama3_inv_freq(inv_freq, s):
    """transformers' _compute_llama3_parameters: low frequencies / factor, high kept, the band between interpolated."""
    factor, low, high = s["factor"], s["low_freq_factor"], s["high_freq_factor"]
    old_context = s["original_max_position_embeddings"]
    low_freq_wavelen, high_freq_wavelen = old_context / low, old_context / high
    wavelen = 2 * math.pi / inv_freq
    scaled = torch.where(wavelen > low_freq_wavelen, inv_freq / factor, inv_freq)
    smooth = (old_context / wavelen - low) / (high - low)
    smoothed = (1 - smooth) * scaled / factor + smooth * scaled
    is_medium = ~(wavelen < high_freq_wavelen) * ~(wavelen > low_freq_wavelen)
    return torch.where(is_medium, smoothed, scaled)


def rope_inv_freq(head_dim, theta, scaling=None):
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))  # [hd/2]
    return inv_freq if scaling is None else llama3_inv_freq(inv_freq, scaling)


def rope_cos_sin(position_ids, head_dim, theta, scaling=None):
    inv_freq = rope_inv_freq(head_dim, theta, scaling)
    freqs = position_ids.float()[:, :, None] * inv_freq[None, None, :]  # [B, T, hd/2]
    emb = torch.cat([freqs, freqs], dim=-1)  # [B, T, hd]
    return emb.cos()[:, None], emb.sin()[:, None]  # [B, 1, T, hd]


def rotate_half(x):
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat([-x2, x1], dim=-1)


def llama_forward(p, c, input_ids, attention_mask, position_ids):
    Bn, Tn = input_ids.shape
    nH, nKV, hd, eps = c["num_attention_heads"], c["num_key_value_heads"], c["head_dim"], c["rms_norm_eps"]
    allowed = attention_bias(attention_mask)
    cos, sin = rope_cos_sin(position_ids, hd, c["rope_theta"], c.get("rope_scaling"))
    h = p["model.embed_tokens.weight"][input_ids]  # [B, T, D]
    for i in range(c["num_hidden_layers"]):
        pre = f"model.layers.{i}."
        x = rms_norm(h, p[pre + "input_layernorm.weight"], eps)
        q = (x @ p[pre + "self_attn.q_proj.weight"].T).view(Bn, Tn, nH, hd).transpose(1, 2)  # [B, nH, T, hd]
        k = (x @ p[pre + "self_attn.k_proj.weight"].T).view(Bn, Tn, nKV, hd).transpose(1, 2)  # [B, nKV, T, hd]
        v = (x @ p[pre + "self_attn.v_proj.weight"].T).view(Bn, Tn, nKV, hd).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        k = k.repeat_interleave(nH // nKV, dim=1)  # HF repeat_kv: query head j uses kv head j // n_rep
        v = v.repeat_interleave(nH // nKV, dim=1)
        y = attend(q, k, v, allowed).transpose(1, 2).reshape(Bn, Tn, nH * hd)  # [B, T, nH*hd]
        h = h + y @ p[pre + "self_attn.o_proj.weight"].T
        x = rms_norm(h, p[pre + "post_attention_layernorm.weight"], eps)
        gate = F.silu(x @ p[pre + "mlp.gate_proj.weight"].T)  # [B, T, F]
        up = x @ p[pre + "mlp.up_proj.weight"].T
        h = h + (gate * up) @ p[pre + "mlp.down_proj.weight"].T
    h = rms_norm(h, p["model.norm.weight"], eps)
    return h @ p["lm_head.weight"].T  # [B, T, V]


# ----------------------------------------------------------------------------- Qwen2

def qwen2_forward(p, c, input_ids, attention_mask, position_ids):
    """Qwen2 (transformers' modeling_qwen2): Llama's block with biased q/k/v projections."""
    Bn, Tn = input_ids.shape
    nH, nKV, eps = c["num_attention_heads"], c["num_key_value_heads"], c["rms_norm_eps"]
    hd = c["hidden_size"] // nH
    allowed = attention_bias(attention_mask)
    cos, sin = rope_cos_sin(position_ids, hd, c["rope_theta"])
    h = p["model.embed_tokens.weight"][input_ids]  # [B, T, D]
    for i in range(c["num_hidden_layers"]):
        pre = f"model.layers.{i}.self_attn."
        x = rms_norm(h, p[f"model.layers.{i}.input_layernorm.weight"], eps)
        q = F.linear(x, p[pre + "q_proj.weight"], p[pre + "q_proj.bias"]).view(Bn, Tn, nH, hd).transpose(1, 2)  # [B, nH, T, hd]
        k = F.linear(x, p[pre + "k_proj.weight"], p[pre + "k_proj.bias"]).view(Bn, Tn, nKV, hd).transpose(1, 2)  # [B, nKV, T, hd]
        v = F.linear(x, p[pre + "v_proj.weight"], p[pre + "v_proj.bias"]).view(Bn, Tn, nKV, hd).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        k = k.repeat_interleave(nH // nKV, dim=1)
        v = v.repeat_interleave(nH // nKV, dim=1)
        y = attend(q, k, v, allowed).transpose(1, 2).reshape(Bn, Tn, nH * hd)
        h = h + F.linear(y, p[pre + "o_proj.weight"])
        mlp = f"model.layers.{i}.mlp."
        x = rms_norm(h, p[f"model.layers.{i}.post_attention_layernorm.weight"], eps)
        h = h + F.linear(F.silu(F.linear(x, p[mlp + "gate_proj.weight"])) * F.linear(x, p[mlp + "up_proj.weight"]), p[mlp + "down_proj.weight"])
    h = rms_norm(h, p["model.norm.weight"], eps)
    head = p["model.embed_tokens.weight"] if c["tie_word_embeddings"] else p["lm_head.weight"]
    return h @ head.T  # [B, T, V]


# ----------------------------------------------------------------------------- GPT-2

def gelu_new(x):
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))


def gpt2_forward(p, c, input_ids, attention_mask, position_ids):
    Bn, Tn = input_ids.shape
    D, nH, eps = c["n_embd"], c["n_head"], c["layer_norm_epsilon"]
    hd = D // nH
    allowed = attention_bias(attention_mask)
    h = p["transformer.wte.weight"][input_ids] + p["transformer.wpe.weight"][position_ids]  # [B, T, D]
    for i in range(c["n_layer"]):
        pre = f"transformer.h.{i}."
        x = F.layer_norm(h, (D,), p[pre + "ln_1.weight"], p[pre + "ln_1.bias"], eps)
        qkv = x @ p[pre + "attn.c_attn.weight"] + p[pre + "attn.c_attn.bias"]  # [B, T, 3D]
        q, k, v = (t.view(Bn, Tn, nH, hd).transpose(1, 2) for t in qkv.split(D, dim=-1))  # [B, nH, T, hd]
        y = attend(q, k, v, allowed).transpose(1, 2).reshape(Bn, Tn, D)
        h = h + y @ p[pre + "attn.c_proj.weight"] + p[pre + "attn.c_proj.bias"]
        x = F.layer_norm(h, (D,), p[pre + "ln_2.weight"], p[pre + "ln_2.bias"], eps)
        m = gelu_new(x @ p[pre + "mlp.c_fc.weight"] + p[pre + "mlp.c_fc.bias"])  # [B, T, 4D]
        h = h + m @ p[pre + "mlp.c_proj.weight"] + p[pre + "mlp.c_proj.bias"]
    h = F.layer_norm(h, (D,), p["transformer.ln_f.weight"], p["transformer.ln_f.bias"], eps)
    return h @ p["lm_head.weight"].T  # [B, T, V]


# ----------------------------------------------------------------------------- batch, loss, training

def make_batch(gen, vocab):
    input_ids = torch.randint(3, vocab, (B, T), generator=gen)
    attention_mask = torch.ones(B, T, dtype=torch.long)
    attention_mask[1, :3] = 0  # left padding
    input_ids[attention_mask == 0] = 0  # pad id
    position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0)
    loss_mask = attention_mask.clone()
    loss_mask[0, :4] = 0  # as if the first 4 tokens of row 0 were a prompt
    # The first real token after left padding is predicted from a pad position, whose output depends
    # on how a fully masked attention row is handled; keep it out of the loss so the reference is
    # independent of that choice (as is every gradient).
    first_real = (attention_mask.cumsum(-1) == 1) & (attention_mask == 1)
    loss_mask[first_real & (torch.arange(T)[None, :] > 0)] = 0
    return input_ids, attention_mask, position_ids, loss_mask


def masked_ce(logits, input_ids, loss_mask):
    """Mean CE over target tokens: position t-1 predicts token t, weighted by loss_mask[t]."""
    V = logits.shape[-1]
    ce = F.cross_entropy(logits[:, :-1].reshape(-1, V), input_ids[:, 1:].reshape(-1), reduction="none")
    w = loss_mask[:, 1:].reshape(-1).float()
    return (ce * w).sum() / w.sum()


def shortest_f32(t):
    """Flat list of Python floats whose repr is the shortest string that round-trips the float32."""
    return [float(str(x)) for x in t.detach().reshape(-1).numpy().astype(np.float32)]


def f32(x):
    return float(str(np.float32(x)))


def tensor_json(t):
    return {"shape": list(t.shape), "data": shortest_f32(t)}


def build(config, shapes, forward, seed):
    gen = torch.Generator().manual_seed(seed)
    params = init_params(shapes, gen)
    input_ids, attention_mask, position_ids, loss_mask = make_batch(gen, config["vocab_size"])
    initial = {k: tensor_json(v) for k, v in params.items()}
    run = lambda: forward(params, config, input_ids, attention_mask, position_ids)

    logits = run()
    loss = masked_ce(logits, input_ids, loss_mask)
    loss.backward()
    grads = {k: tensor_json(v.grad) for k, v in params.items()}

    adamw = {"lr": 1e-2, "betas": [0.9, 0.999], "eps": 1e-8, "weight_decay": 0.01, "max_grad_norm": 1.0, "steps": 20}
    opt = torch.optim.AdamW(params.values(), lr=adamw["lr"], betas=tuple(adamw["betas"]), eps=adamw["eps"],
                            weight_decay=adamw["weight_decay"])
    losses, grad_norms = [], []
    for _ in range(adamw["steps"]):
        opt.zero_grad(set_to_none=True)
        step_loss = masked_ce(run(), input_ids, loss_mask)
        step_loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(params.values(), adamw["max_grad_norm"])
        opt.step()
        losses.append(f32(step_loss.item()))
        grad_norms.append(f32(norm.item()))
    with torch.no_grad():
        final_loss = f32(masked_ce(run(), input_ids, loss_mask).item())
    adamw.update({"losses": losses, "grad_norms": grad_norms, "final_loss": final_loss})

    return {
        "torch_version": torch.__version__,
        "seed": seed,
        "config": config,
        "params": initial,
        "input_ids": input_ids.tolist(),
        "attention_mask": attention_mask.tolist(),
        "position_ids": position_ids.tolist(),
        "loss_mask": loss_mask.tolist(),
        "logits": tensor_json(logits),
        "loss": f32(loss.item()),
        "grads": grads,
        "adamw": adamw,
    }


def main():
    wanted = set(sys.argv[1:])
    fixtures = [
        ("llama-tiny", LLAMA_CONFIG, llama_shapes(LLAMA_CONFIG), llama_forward),
        ("gpt2-tiny", GPT2_CONFIG, gpt2_shapes(GPT2_CONFIG), gpt2_forward),
        ("qwen2-tiny", QWEN2_CONFIG, qwen2_shapes(QWEN2_CONFIG), qwen2_forward),
        ("llama3-tiny", LLAMA3_CONFIG, llama_shapes(LLAMA3_CONFIG), llama_forward),
    ]
    unknown = wanted - {name for name, *_ in fixtures}
    if unknown:
        sys.exit(f"unknown fixtures: {sorted(unknown)}")
    for name, config, shapes, forward in fixtures:
        if wanted and name not in wanted:
            continue
        torch.manual_seed(SEED)
        fixture = build(config, shapes, forward, SEED)
        if "rope_scaling" in config:
            fixture["inv_freq_cases"] = [
                {"head_dim": config["head_dim"], "rope_theta": config["rope_theta"], "rope_scaling": config["rope_scaling"],
                 "inv_freq": shortest_f32(rope_inv_freq(config["head_dim"], config["rope_theta"], config["rope_scaling"]))},
                {**LLAMA32_1B_ROPE, "inv_freq": shortest_f32(rope_inv_freq(64, 500000.0, LLAMA32_1B_ROPE["rope_scaling"]))},
            ]
        path = os.path.join(OUT_DIR, name + ".json")
        with open(path, "w") as f:
            json.dump(fixture, f, separators=(",", ":"))
            f.write("\n")
        a = fixture["adamw"]
        print(f"{name}: loss {fixture['loss']:.6f}, adamw {a['losses'][0]:.4f} -> {a['final_loss']:.4f}, "
              f"{os.path.getsize(path) / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
