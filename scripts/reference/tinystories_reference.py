"""Greedy decoding of ../shared/data/tinystories-656k by an independent Llama forward in numpy.

Reads the checkpoint as transformers saved it (config.json, model.safetensors parsed by hand, the
tied embedding found through the file's `__metadata__` alias) and runs a float64 Llama written from
Hugging Face's semantics: RMSNorm, rotate-half RoPE, grouped-query attention (query head j uses kv
head j // n_rep), SwiGLU MLP, the head tied to the embedding. No KV cache: every step re-runs the
whole sequence. Writes test/fixtures/tinystories-656k-greedy.json (see test/fixtures/README.md).

    OPENBLAS_NUM_THREADS=2 /usr/bin/python3 scripts/reference/tinystories_reference.py
"""
import json
import os
import struct

import numpy as np

HERE = os.path.dirname(__file__)
MODEL_DIR = os.path.join(HERE, "..", "..", "..", "shared", "data", "tinystories-656k")
OUT = os.path.join(HERE, "..", "..", "test", "fixtures", "tinystories-656k-greedy.json")
NEW_TOKENS = 64


def read_safetensors(path):
    """{name: float64 array} and the metadata; F32 only, which is what this file stores."""
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    metadata = header.pop("__metadata__", {})
    tensors = {}
    for name, entry in header.items():
        assert entry["dtype"] == "F32", (name, entry["dtype"])
        begin, end = entry["data_offsets"]
        tensors[name] = np.frombuffer(data[8 + n + begin:8 + n + end], dtype="<f4").reshape(entry["shape"]).astype(np.float64)
    return tensors, metadata


def load():
    with open(os.path.join(MODEL_DIR, "config.json")) as f:
        config = json.load(f)
    weights, metadata = read_safetensors(os.path.join(MODEL_DIR, "model.safetensors"))
    for dropped, kept in metadata.items():  # safetensors' record of tied names it did not store
        if dropped not in weights and kept in weights:
            weights[dropped] = weights[kept]
    assert config["tie_word_embeddings"] and "model.embed_tokens.weight" in weights
    return config, weights


def rms_norm(x, weight, eps):
    return weight * (x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps))


def rotate_half(x):
    half = x.shape[-1] // 2
    return np.concatenate([-x[..., half:], x[..., :half]], axis=-1)


def forward(c, w, ids):
    """Logits [T, V] for one sequence of token ids (positions 0..T-1)."""
    T = len(ids)
    nH, nKV = c["num_attention_heads"], c["num_key_value_heads"]
    hd = c["hidden_size"] // nH
    eps = c["rms_norm_eps"]
    inv_freq = 1.0 / c["rope_theta"] ** (np.arange(0, hd, 2) / hd)  # [hd/2]
    angles = np.arange(T)[:, None] * inv_freq[None, :]  # [T, hd/2]
    cos, sin = np.cos(np.concatenate([angles, angles], -1)), np.sin(np.concatenate([angles, angles], -1))  # [T, hd]
    causal = np.tril(np.ones((T, T), dtype=bool))
    h = w["model.embed_tokens.weight"][ids]  # [T, D]
    for i in range(c["num_hidden_layers"]):
        p = f"model.layers.{i}."
        x = rms_norm(h, w[p + "input_layernorm.weight"], eps)
        q = (x @ w[p + "self_attn.q_proj.weight"].T).reshape(T, nH, hd).transpose(1, 0, 2)  # [nH, T, hd]
        k = (x @ w[p + "self_attn.k_proj.weight"].T).reshape(T, nKV, hd).transpose(1, 0, 2)  # [nKV, T, hd]
        v = (x @ w[p + "self_attn.v_proj.weight"].T).reshape(T, nKV, hd).transpose(1, 0, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        k = np.repeat(k, nH // nKV, axis=0)  # [nH, T, hd]
        v = np.repeat(v, nH // nKV, axis=0)
        scores = np.where(causal, q @ k.transpose(0, 2, 1) / np.sqrt(hd), -np.inf)  # [nH, T, T]
        probs = np.exp(scores - scores.max(-1, keepdims=True))
        probs /= probs.sum(-1, keepdims=True)
        y = (probs @ v).transpose(1, 0, 2).reshape(T, nH * hd)  # [T, nH*hd]
        h = h + y @ w[p + "self_attn.o_proj.weight"].T
        x = rms_norm(h, w[p + "post_attention_layernorm.weight"], eps)
        gate = x @ w[p + "mlp.gate_proj.weight"].T  # [T, F]
        h = h + ((gate / (1 + np.exp(-gate))) * (x @ w[p + "mlp.up_proj.weight"].T)) @ w[p + "mlp.down_proj.weight"].T
    h = rms_norm(h, w["model.norm.weight"], eps)
    return h @ w["model.embed_tokens.weight"].T  # [T, V]


def log_softmax(logits):
    m = logits.max()
    return logits - m - np.log(np.sum(np.exp(logits - m)))


def decode(ids):
    """tokenizer.json's decoder for this vocabulary: '▁' -> ' ', <0xNN> byte fallback, strip one leading space."""
    with open(os.path.join(MODEL_DIR, "tokenizer.json")) as f:
        vocab = {i: t for t, i in json.load(f)["model"]["vocab"].items()}
    out = bytearray()
    for i in ids:
        piece = vocab[i]
        if len(piece) == 6 and piece.startswith("<0x") and piece.endswith(">"):
            out.append(int(piece[3:5], 16))
        else:
            out += piece.replace("\u2581", " ").encode("utf-8")
    text = out.decode("utf-8", errors="replace")
    return text[1:] if text.startswith(" ") else text


def main():
    c, w = load()
    bos, eos = c["bos_token_id"], c["eos_token_id"]
    ids, logprobs, margins = [bos], [], []
    bos_logits = None
    stopped_on_eos = False
    for _ in range(NEW_TOKENS):
        logits = forward(c, w, ids)[-1]  # [V]
        if bos_logits is None:
            bos_logits = logits
        top2 = np.sort(logits)[-2:]
        token = int(np.argmax(logits))
        if token == eos:
            stopped_on_eos = True
            break
        margins.append(float(top2[1] - top2[0]))
        logprobs.append(float(log_softmax(logits)[token]))
        ids.append(token)
    fixture = {
        "model": "tinystories-656k",
        "reference": "numpy float64 Llama forward (scripts/reference/tinystories_reference.py), no KV cache",
        "prompt_ids": [bos],
        "max_new_tokens": NEW_TOKENS,
        "completion_ids": ids[1:],
        "logprobs": logprobs,
        "min_top2_margin": min(margins),
        "stopped_on_eos": stopped_on_eos,
        "text": decode(ids[1:]),
        "bos_logits": [float(np.float32(x)) for x in bos_logits],
    }
    with open(OUT, "w") as f:
        json.dump(fixture, f, separators=(",", ":"))
        f.write("\n")
    print(f"{len(ids) - 1} tokens, min top-2 margin {min(margins):.4f}: {fixture['text']!r}")


if __name__ == "__main__":
    main()
