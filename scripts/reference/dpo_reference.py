"""TRL's DPO step written again in PyTorch, run by src/train/dpo-reference.test.ts.

An independent implementation of what TRL's DPOTrainer computes for one batch of preference pairs,
in TRL's own order: the collator left-pads the prompts and right-pads the completions; the
concatenated forward puts the B chosen rows above the B rejected rows, joins prompt and completion,
flushes every row left (so positions start at 0, as the model numbers them without position_ids),
and reads the log-prob of each completion token from logits rolled by one (labels =
roll(input_ids, -1)), summed per row. The reference model's log-probs come from the same forward
without gradients (precompute_ref_log_probs gives the same numbers). Then the sigmoid loss
-log σ(β h) with h = (π_c − π_r) − (ref_c − ref_r), TRL's rewards/* and logps/* metrics, and the
gradient of the loss for every parameter with their global norm (the grad_norm the Trainer logs).
With `rpo_alpha` set, TRL's RPO term is added: rpo_alpha × the cross-entropy of the chosen rows'
completion tokens (their mean token NLL over the batch), logged as `nll_loss`.

Reads DIR/policy and DIR/reference ({config.json, model.safetensors}, HF Llama names) and
DIR/pairs.json ({beta, pad_id, rpo_alpha (or null), pairs: [{prompt, chosen, rejected}: token ids]}); writes
DIR/reference.json (log-probs, loss, metrics, grad_norm) and DIR/reference.safetensors (`grad.<name>`).

    OPENBLAS_NUM_THREADS=2 /usr/bin/python3 scripts/reference/dpo_reference.py DIR
"""
import json
import os
import sys

os.environ.setdefault("OPENBLAS_NUM_THREADS", "2")
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(__file__))
from head_reference import read_safetensors, write_safetensors  # noqa: E402
from make_fixtures import llama_forward  # noqa: E402

torch.set_num_threads(1)


def load(directory):
    with open(os.path.join(directory, "config.json")) as f:
        config = json.load(f)
    config.setdefault("head_dim", config["hidden_size"] // config["num_attention_heads"])
    config.setdefault("rope_theta", 10000.0)
    params = read_safetensors(os.path.join(directory, "model.safetensors"))
    return config, params


def forward_weights(config, params):
    weights = dict(params)
    if config.get("tie_word_embeddings"):
        weights["lm_head.weight"] = params["model.embed_tokens.weight"]  # one tensor, two uses
    return weights


def pad(rows, value, left):
    width = max(len(r) for r in rows)
    out = [([value] * (width - len(r)) + r) if left else (r + [value] * (width - len(r))) for r in rows]
    mask = [([0] * (width - len(r)) + [1] * len(r)) if left else ([1] * len(r) + [0] * (width - len(r))) for r in rows]
    return torch.tensor(out), torch.tensor(mask)


def collate(pairs, pad_id):
    """DataCollatorForPreference: prompts padded on the left, completions on the right."""
    prompt, prompt_mask = pad([p["prompt"] for p in pairs], pad_id, left=True)
    chosen, chosen_mask = pad([p["chosen"] for p in pairs], pad_id, left=False)
    rejected, rejected_mask = pad([p["rejected"] for p in pairs], pad_id, left=False)
    return dict(prompt_input_ids=prompt, prompt_attention_mask=prompt_mask, chosen_input_ids=chosen,
                chosen_attention_mask=chosen_mask, rejected_input_ids=rejected, rejected_attention_mask=rejected_mask)


def pad_to_length(t, length, value):
    return F.pad(t, (0, length - t.shape[1]), value=value)


def concatenated_inputs(batch, pad_id):
    """The prompt twice, and chosen over rejected padded to one width: 2B rows."""
    width = max(batch["chosen_input_ids"].shape[1], batch["rejected_input_ids"].shape[1])
    return dict(
        prompt_input_ids=torch.cat([batch["prompt_input_ids"]] * 2),
        prompt_attention_mask=torch.cat([batch["prompt_attention_mask"]] * 2),
        completion_input_ids=torch.cat([pad_to_length(batch["chosen_input_ids"], width, pad_id), pad_to_length(batch["rejected_input_ids"], width, pad_id)]),
        completion_attention_mask=torch.cat([pad_to_length(batch["chosen_attention_mask"], width, 0), pad_to_length(batch["rejected_attention_mask"], width, 0)]),
    )


def flush_left(mask, *tensors):
    """Shift each row left past its leading padding, then drop the columns that are padding everywhere."""
    shifted_mask, shifted = torch.zeros_like(mask), [torch.zeros_like(t) for t in tensors]
    for i in range(mask.shape[0]):
        first = int(torch.nonzero(mask[i])[0])
        n = mask.shape[1] - first
        shifted_mask[i, :n] = mask[i, first:]
        for s, t in zip(shifted, tensors):
            s[i, :n] = t[i, first:]
    width = int(shifted_mask.sum(0).nonzero().max()) + 1
    return shifted_mask[:, :width], *[s[:, :width] for s in shifted]


def concatenated_logps(config, weights, batch, pad_id):
    """Sequence log-probs [2B] of the completions (chosen rows first), TRL's concatenated_forward,
    and the completion-token counts [2B]."""
    c = concatenated_inputs(batch, pad_id)
    input_ids = torch.cat([c["prompt_input_ids"], c["completion_input_ids"]], dim=1)
    attention_mask = torch.cat([c["prompt_attention_mask"], c["completion_attention_mask"]], dim=1)
    loss_mask = torch.cat([torch.zeros_like(c["prompt_attention_mask"]), c["completion_attention_mask"]], dim=1)
    attention_mask, input_ids, loss_mask = flush_left(attention_mask, input_ids, loss_mask)
    position_ids = torch.arange(input_ids.shape[1]).expand_as(input_ids)
    logits = llama_forward(weights, config, input_ids, attention_mask, position_ids)  # [2B, T, V]
    labels = torch.roll(input_ids, shifts=-1, dims=1)
    loss_mask = torch.roll(loss_mask, shifts=-1, dims=1).bool()
    labels[~loss_mask] = 0
    per_token = torch.gather(logits.log_softmax(-1), dim=2, index=labels.unsqueeze(2)).squeeze(2)
    per_token = per_token.masked_fill(~loss_mask, 0)
    return per_token.sum(-1), loss_mask.sum(-1)


def main(directory):
    with open(os.path.join(directory, "pairs.json")) as f:
        spec = json.load(f)
    beta, pad_id, pairs, rpo_alpha = spec["beta"], spec["pad_id"], spec["pairs"], spec.get("rpo_alpha")
    batch = collate(pairs, pad_id)
    n = len(pairs)

    ref_config, ref_params = load(os.path.join(directory, "reference"))
    with torch.no_grad():
        ref, _ = concatenated_logps(ref_config, forward_weights(ref_config, ref_params), batch, pad_id)
    config, params = load(os.path.join(directory, "policy"))
    params = {k: v.requires_grad_(True) for k, v in params.items()}
    policy, tokens = concatenated_logps(config, forward_weights(config, params), batch, pad_id)

    chosen, rejected, ref_chosen, ref_rejected = policy[:n], policy[n:], ref[:n], ref[n:]
    logits = (chosen - rejected) - (ref_chosen - ref_rejected)
    loss = (-F.logsigmoid(beta * logits)).mean()
    # TRL's nll_loss: cross-entropy over every completion token of the chosen rows, one mean.
    nll = -chosen.sum() / tokens[:n].sum()
    if rpo_alpha is not None:
        loss = loss + rpo_alpha * nll
    chosen_rewards = beta * (chosen - ref_chosen).detach()
    rejected_rewards = beta * (rejected - ref_rejected).detach()
    loss.backward()
    grad_norm = torch.sqrt(sum((p.grad.double() ** 2).sum() for p in params.values()))

    write_safetensors(os.path.join(directory, "reference.safetensors"), {f"grad.{k}": v.grad for k, v in params.items()})
    out = {
        "ref_chosen": ref_chosen.tolist(),
        "ref_rejected": ref_rejected.tolist(),
        "policy_chosen": chosen.tolist(),
        "policy_rejected": rejected.tolist(),
        "loss": loss.item(),
        "metrics": {
            "rewards/chosen": chosen_rewards.mean().item(),
            "rewards/rejected": rejected_rewards.mean().item(),
            "rewards/accuracies": (chosen_rewards > rejected_rewards).float().mean().item(),
            "rewards/margins": (chosen_rewards - rejected_rewards).mean().item(),
            "logps/chosen": chosen.detach().mean().item(),
            "logps/rejected": rejected.detach().mean().item(),
            **({"nll_loss": nll.item()} if rpo_alpha is not None else {}),
        },
        "grad_norm": grad_norm.item(),
        "torch_version": torch.__version__,
    }
    with open(os.path.join(directory, "reference.json"), "w") as f:
        json.dump(out, f)


if __name__ == "__main__":
    main(sys.argv[1])
