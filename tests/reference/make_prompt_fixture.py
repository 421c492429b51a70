#!/usr/bin/python3
"""Writes tests/reference/prompt_fixture.h5: PFCR's two prompt-tuning heads in PyTorch
(pfcr_torch.py LightPromptModel / FullPromptModel, written out from the authors'
model/light_prompt.py and model/full_prompt.py; Debian's python3-torch 1.13; not run in CI),
frozen as prompt_finetune.py freezes (encoder frozen except the code table), float64, dropout
off, small shapes, one batch with history lengths 1 .. MAX_LEN. For each mode (groups `light`,
`full`): every parameter under weights/ (encoder names as they are, head names under prompt/),
the expected loss and logits, the gradient of every TRAINABLE parameter, and every parameter
after 3 Adam steps.

Usage: /usr/bin/python3 tests/reference/make_prompt_fixture.py [OUT.h5]
"""
import os
import sys

import h5py
import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pfcr_torch import (FullPromptModel, Hyper, LightPromptModel,  # noqa: E402
                        freeze_like_reference)

HIDDEN, INNER, LAYERS, HEADS = 16, 12, 2, 2
MAX_LEN, CODE_DIM, CODE_CAP, N_ITEMS = 12, 4, 8, 15
N_PROMPTS, PROMPT_HEADS = 8, 4
EPS, TEMPERATURE, INIT_RANGE, LR = 1e-12, 0.07, 0.02, 1e-3
LENGTHS = [1, 12, 3, 7, 2, 5]


def layout_key(name):
    """pfcr's ParamLayout key of a state_dict name of the prompt model."""
    return name[len("vqrec."):] if name.startswith("vqrec.") else "prompt/" + name


def run_mode(f, mode, codes, item_seq, seq_len, targets):
    hp = Hyper(hidden=HIDDEN, inner=INNER, layers=LAYERS, heads=HEADS, max_len=MAX_LEN,
               code_dim=CODE_DIM, code_cap=CODE_CAP, hidden_dropout=0.0, attn_dropout=0.0,
               eps=EPS, temperature=TEMPERATURE, init_range=INIT_RANGE)
    if mode == "light":
        model = LightPromptModel(hp, torch.from_numpy(codes), N_PROMPTS, PROMPT_HEADS)
    else:
        model = FullPromptModel(hp, torch.from_numpy(codes), N_ITEMS + 1, N_PROMPTS, PROMPT_HEADS)
    # A "pre-trained" state: LayerNorm parameters and biases away from 1 / 0 (zero-initialised
    # biases such as in_proj_bias included) so that their gradients matter in the check.
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "LayerNorm" in name or name.endswith("bias"):
                p.add_(0.1 * torch.randn_like(p))
    freeze_like_reference(model)
    weights = {layout_key(k): v.detach().clone() for k, v in model.state_dict().items()
               if not k.endswith("pq_codes")}
    loss, logits = model.loss_and_logits(item_seq, seq_len, targets)
    loss.backward()
    grads = {layout_key(n): p.grad.detach().clone() for n, p in model.named_parameters()
             if p.requires_grad}
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    for _ in range(3):
        opt.zero_grad()
        l, _ = model.loss_and_logits(item_seq, seq_len, targets)
        l.backward()
        opt.step()
    after = {layout_key(n): p.detach().clone() for n, p in model.named_parameters()}
    g = f.create_group(mode)
    for k, v in weights.items():
        g[f"weights/{k}"] = v.numpy()
    g["expected/loss"] = np.float64(loss.item())
    g["expected/logits"] = logits.detach().numpy()
    for k, v in grads.items():
        g[f"expected/grad/{k}"] = v.numpy()
    for k, v in after.items():
        g[f"expected/after_3_adam/{k}"] = v.numpy()
    print(f"{mode}: loss {loss.item():.6f}, {len(weights)} tensors, {len(grads)} trainable")


def main():
    out_path = sys.argv[1] if len(sys.argv) > 1 else "tests/reference/prompt_fixture.h5"
    torch.manual_seed(2020)
    gen = np.random.default_rng(2020)
    torch.set_default_dtype(torch.float64)
    codes = np.zeros((N_ITEMS + 1, CODE_DIM), dtype=np.int64)
    for i in range(1, N_ITEMS + 1):
        codes[i] = np.arange(CODE_DIM) * (CODE_CAP + 1) + gen.integers(0, CODE_CAP, CODE_DIM) + 1
    histories = [gen.integers(1, N_ITEMS + 1, n) for n in LENGTHS]
    targets = torch.from_numpy(gen.integers(1, N_ITEMS + 1, len(LENGTHS)))
    item_seq = torch.zeros(len(LENGTHS), MAX_LEN, dtype=torch.long)          # right padding
    for b, h in enumerate(histories):
        item_seq[b, :len(h)] = torch.from_numpy(h)
    seq_len = torch.tensor(LENGTHS)

    with h5py.File(out_path, "w") as f:
        f.attrs["generator"] = "tests/reference/make_prompt_fixture.py"
        f.attrs["torch_version"] = str(torch.__version__)
        for k, v in dict(hidden_size=HIDDEN, inner_size=INNER, n_layers=LAYERS, n_heads=HEADS,
                         MAX_ITEM_LIST_LENGTH=MAX_LEN, code_dim=CODE_DIM, code_cap=CODE_CAP,
                         n_items=N_ITEMS, n_prompts=N_PROMPTS,
                         prompt_heads=PROMPT_HEADS).items():
            f.attrs[k] = np.int64(v)
        for k, v in dict(layer_norm_eps=EPS, temperature=TEMPERATURE, learning_rate=LR).items():
            f.attrs[k] = np.float64(v)
        f["item_codes"] = codes.astype(np.int32)
        f["batch/indptr"] = np.concatenate([[0], np.cumsum(LENGTHS)]).astype(np.int64)
        f["batch/items"] = np.concatenate(histories).astype(np.int32)
        f["batch/targets"] = targets.numpy().astype(np.int32)
        for mode in ("light", "full"):
            run_mode(f, mode, codes, item_seq, seq_len, targets)
    print(f"wrote {out_path}, torch {torch.__version__}")


if __name__ == "__main__":
    main()
