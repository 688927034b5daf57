"""PyTorch reference for TrainStep (src/train/step.ts), run by src/train/step.test.ts.

Reads DIR/input.json and trains a tiny model the way transformers' Trainer does, writing what each
step gives to DIR/output.json. The model: y = (x * g) W^T + b with g = layers.0.norm.weight [D],
W = layers.0.linear.weight [O, D], b = layers.0.linear.bias [O]; the loss is the mean squared error
over a micro-batch. Each step:
  - gradients accumulated over the step's micro-batches, each micro-batch's loss divided by their
    number (the Trainer's gradient accumulation), so the gradient is their mean;
  - torch.nn.utils.clip_grad_norm_(max_grad_norm);
  - torch.optim.AdamW with two parameter groups: weight_decay for every parameter but those named
    in `no_decay`, which get 0; the step's learning rate set on both groups.

input.json:  {params: {name: {shape, data}}, no_decay: [name], steps: [[{x, y}, ...], ...],
              lrs: [lr per step], betas: [b1, b2], eps, weight_decay, max_grad_norm}
output.json: {steps: [{loss (the micro-batches' mean), grad_norm (before clipping),
              params: {name: [flat values after the step]}}], torch_version}

    OPENBLAS_NUM_THREADS=2 /usr/bin/python3 scripts/reference/train_step_reference.py DIR
"""
import json
import os
import sys

os.environ.setdefault("OPENBLAS_NUM_THREADS", "2")
import torch

torch.set_num_threads(1)


def main(directory):
    with open(os.path.join(directory, "input.json")) as f:
        spec = json.load(f)
    params = {name: torch.tensor(p["data"], dtype=torch.float32).reshape(p["shape"]).requires_grad_(True) for name, p in spec["params"].items()}
    no_decay = set(spec["no_decay"])
    groups = [
        {"params": [p for n, p in params.items() if n not in no_decay], "weight_decay": spec["weight_decay"]},
        {"params": [p for n, p in params.items() if n in no_decay], "weight_decay": 0.0},
    ]
    opt = torch.optim.AdamW(groups, lr=spec["lrs"][0], betas=tuple(spec["betas"]), eps=spec["eps"])
    g, w, b = params["layers.0.norm.weight"], params["layers.0.linear.weight"], params["layers.0.linear.bias"]
    out = []
    for lr, micro_batches in zip(spec["lrs"], spec["steps"]):
        for group in opt.param_groups:
            group["lr"] = lr
        opt.zero_grad()
        total = 0.0
        for mb in micro_batches:
            x, y = torch.tensor(mb["x"], dtype=torch.float32), torch.tensor(mb["y"], dtype=torch.float32)
            loss = (((x * g) @ w.T + b - y) ** 2).mean() / len(micro_batches)
            loss.backward()
            total += loss.item()
        norm = torch.nn.utils.clip_grad_norm_(list(params.values()), spec["max_grad_norm"])
        opt.step()
        out.append({"loss": total, "grad_norm": norm.item(), "params": {n: p.detach().reshape(-1).tolist() for n, p in params.items()}})
    with open(os.path.join(directory, "output.json"), "w") as f:
        json.dump({"steps": out, "torch_version": torch.__version__}, f)


if __name__ == "__main__":
    main(sys.argv[1])
