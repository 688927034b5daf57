"""PyTorch reference for a model with a real vocabulary, run by src/train/head-reference.test.ts.

Reads DIR/config.json, DIR/model.safetensors (HF names; a tied head is stored once, as the
embedding) and DIR/batch.json ({input_ids, attention_mask, position_ids, loss_mask}), and writes
DIR/reference.safetensors with the logits [B, T, V] and the gradient of the masked mean
cross-entropy for every parameter (`grad.<name>`), and DIR/reference.json with the loss. The models
are the plain-torch Llama and GPT-2 of make_fixtures.py (written from Hugging Face's semantics).

    OPENBLAS_NUM_THREADS=2 /usr/bin/python3 scripts/reference/head_reference.py DIR
"""
import json
import os
import struct
import sys

os.environ.setdefault("OPENBLAS_NUM_THREADS", "2")
import numpy as np
import torch

sys.path.insert(0, os.path.dirname(__file__))
from make_fixtures import gpt2_forward, llama_forward, masked_ce  # noqa: E402

torch.set_num_threads(1)


def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    out = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        assert entry["dtype"] == "F32", f"{name}: {entry['dtype']}"
        begin, end = entry["data_offsets"]
        array = np.frombuffer(data[8 + n + begin : 8 + n + end], dtype="<f4").reshape(entry["shape"])
        out[name] = torch.tensor(array.copy())
    return out


def write_safetensors(path, tensors):
    header, blobs, offset = {}, [], 0
    for name, t in tensors.items():
        raw = t.detach().contiguous().numpy().astype("<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    text = json.dumps(header).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for raw in blobs:
            f.write(raw)


def main(directory):
    with open(os.path.join(directory, "config.json")) as f:
        config = json.load(f)
    with open(os.path.join(directory, "batch.json")) as f:
        batch = json.load(f)
    params = {k: v.requires_grad_(True) for k, v in read_safetensors(os.path.join(directory, "model.safetensors")).items()}
    if config["model_type"] == "llama":
        config.setdefault("head_dim", config["hidden_size"] // config["num_attention_heads"])
        forward = llama_forward
        embedding = "model.embed_tokens.weight"
    else:
        forward = gpt2_forward
        embedding = "transformer.wte.weight"
    weights = dict(params)
    if config.get("tie_word_embeddings"):
        weights["lm_head.weight"] = params[embedding]  # one tensor, two uses: its gradient sums both
    ids = torch.tensor(batch["input_ids"])
    logits = forward(weights, config, ids, torch.tensor(batch["attention_mask"]), torch.tensor(batch["position_ids"]))
    loss = masked_ce(logits, ids, torch.tensor(batch["loss_mask"]))
    loss.backward()
    outputs = {"logits": logits}
    outputs.update({f"grad.{k}": v.grad for k, v in params.items()})
    write_safetensors(os.path.join(directory, "reference.safetensors"), outputs)
    with open(os.path.join(directory, "reference.json"), "w") as f:
        json.dump({"loss": loss.item(), "torch_version": torch.__version__}, f)


if __name__ == "__main__":
    main(sys.argv[1])
