"""Plain LoRA references, independent of rlhf-ts, run by src/models/lora.test.ts and
src/train/lora-sft.test.ts (peft itself is not installable here; this is PEFT's arithmetic written out).

    layer DIR
        DIR/layer.json holds x [B, T, in], weight ([out, in], or [in, out] when conv1d: GPT-2's
        Conv1D), bias or null, lora_A [r, in], lora_B [out, r], scaling and a cotangent [B, T, out].
        Writes DIR/layer-reference.json: y = base(x) + lora_B(lora_A(x)) * scaling (PEFT's
        lora.Linear forward, dropout 0) and the gradients of sum(y * cotangent) with respect to x,
        lora_A and lora_B, by PyTorch autograd in float64.
    merged-greedy ADAPTER_DIR BASE_DIR N
        Merges the adapter into the base in numpy float64 (W += scaling * B @ A for every pair of
        lora_A/lora_B tensors in adapter_model.safetensors, scaling from adapter_config.json) and
        decodes N tokens greedily from BOS with tinystories_reference.py's Llama forward. Prints
        JSON {completion_ids, min_top2_margin}.
    write-adapter DIR BASE_DIR
        Writes DIR as PEFT's save_pretrained lays out a LoRA adapter of tinystories-656k
        (adapter_config.json; adapter_model.safetensors keyed base_model.model.<module>.lora_A.weight)
        with seeded random A and B, rsLoRA scaling, then prints what merged-greedy predicts for it.

    OPENBLAS_NUM_THREADS=2 /usr/bin/python3 scripts/reference/lora_reference.py layer DIR
"""
import json
import os
import sys

os.environ.setdefault("OPENBLAS_NUM_THREADS", "2")
import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from head_reference import write_safetensors  # noqa: E402
from tinystories_reference import forward, read_safetensors  # noqa: E402

PREFIX = "base_model.model."


def layer(directory):
    import torch

    with open(os.path.join(directory, "layer.json")) as f:
        case = json.load(f)
    t = lambda v, grad=False: torch.tensor(v, dtype=torch.float64, requires_grad=grad)  # noqa: E731
    x, a, b = t(case["x"], True), t(case["lora_A"], True), t(case["lora_B"], True)
    weight = t(case["weight"])
    bias = None if case["bias"] is None else t(case["bias"])
    base = x @ weight if case["conv1d"] else torch.nn.functional.linear(x, weight)
    if bias is not None:
        base = base + bias
    y = base + torch.nn.functional.linear(torch.nn.functional.linear(x, a), b) * case["scaling"]
    (y * t(case["cotangent"])).sum().backward()
    out = {"y": y.detach().tolist(), "grad_x": x.grad.tolist(), "grad_A": a.grad.tolist(), "grad_B": b.grad.tolist()}
    with open(os.path.join(directory, "layer-reference.json"), "w") as f:
        json.dump(out, f)


def load_base(base_dir):
    with open(os.path.join(base_dir, "config.json")) as f:
        config = json.load(f)
    weights, metadata = read_safetensors(os.path.join(base_dir, "model.safetensors"))
    for dropped, kept in metadata.items():  # tied names the saver stored once
        if dropped not in weights and kept in weights:
            weights[dropped] = weights[kept]
    return config, weights


def merged(adapter_dir, base_dir):
    config, weights = load_base(base_dir)
    with open(os.path.join(adapter_dir, "adapter_config.json")) as f:
        lora = json.load(f)
    r, alpha = lora["r"], lora["lora_alpha"]
    scaling = alpha / np.sqrt(r) if lora.get("use_rslora") else alpha / r
    tensors, _ = read_safetensors(os.path.join(adapter_dir, "adapter_model.safetensors"))
    for key, a in tensors.items():
        if not key.endswith(".lora_A.weight"):
            continue
        module = key[len(PREFIX):-len(".lora_A.weight")]
        b = tensors[f"{PREFIX}{module}.lora_B.weight"]
        weights[f"{module}.weight"] = weights[f"{module}.weight"] + scaling * (b @ a)
    return config, weights


def greedy(config, weights, n):
    ids, margins = [config["bos_token_id"]], []
    for _ in range(n):
        logits = forward(config, weights, ids)[-1]
        top2 = np.sort(logits)[-2:]
        token = int(np.argmax(logits))
        if token == config["eos_token_id"]:
            break
        margins.append(float(top2[1] - top2[0]))
        ids.append(token)
    return {"completion_ids": ids[1:], "min_top2_margin": min(margins) if margins else None}


def write_adapter(directory, base_dir):
    config, weights = load_base(base_dir)
    rng = np.random.RandomState(7)
    r, targets = 4, ["q_proj", "v_proj", "down_proj"]
    tensors = {}
    for i in range(config["num_hidden_layers"]):
        for module in [f"model.layers.{i}.self_attn.q_proj", f"model.layers.{i}.self_attn.v_proj", f"model.layers.{i}.mlp.down_proj"]:
            out_features, in_features = weights[f"{module}.weight"].shape
            bound = 1 / np.sqrt(in_features)
            tensors[f"{PREFIX}{module}.lora_A.weight"] = rng.uniform(-bound, bound, (r, in_features)).astype(np.float32)
            tensors[f"{PREFIX}{module}.lora_B.weight"] = (0.3 * rng.randn(out_features, r)).astype(np.float32)
    os.makedirs(directory, exist_ok=True)
    import torch

    write_safetensors(os.path.join(directory, "adapter_model.safetensors"), {k: torch.tensor(v) for k, v in tensors.items()})
    lora_config = {
        "peft_type": "LORA", "task_type": "CAUSAL_LM", "base_model_name_or_path": os.path.abspath(base_dir),
        "revision": None, "inference_mode": True, "r": r, "target_modules": targets, "exclude_modules": None,
        "lora_alpha": 8, "lora_dropout": 0.1, "fan_in_fan_out": False, "bias": "none", "use_rslora": True,
        "modules_to_save": None, "init_lora_weights": True, "layers_to_transform": None, "layers_pattern": None,
        "rank_pattern": {}, "alpha_pattern": {}, "megatron_config": None, "megatron_core": "megatron.core",
        "loftq_config": {}, "use_dora": False, "layer_replication": None, "lora_bias": False,
        "trainable_token_indices": None, "peft_version": "0.15.2",
    }
    with open(os.path.join(directory, "adapter_config.json"), "w") as f:
        json.dump(lora_config, f, indent=2)


def main():
    command, args = sys.argv[1], sys.argv[2:]
    if command == "layer":
        layer(args[0])
    elif command == "merged-greedy":
        print(json.dumps(greedy(*merged(args[0], args[1]), int(args[2]))))
    elif command == "write-adapter":
        write_adapter(args[0], args[1])
        print(json.dumps(greedy(*merged(args[0], args[1]), 48)))
    else:
        raise SystemExit(f"unknown command {command}")


if __name__ == "__main__":
    main()
