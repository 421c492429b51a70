#!/usr/bin/python3
"""Writes tests/reference/encoder_fixture.h5: a small PFCR/RecBole sequence model in PyTorch
(Debian's python3-torch 1.13; not run in CI), its weights under their state_dict names, one
batch with varied history lengths (1 .. 50), and the expected loss, logits, every parameter
gradient, and the parameters after 3 Adam steps, all with dropout off and in float64.

The model is pfcr_torch.py beside this file (RecBole 1.0.1 + PFCR's code-mean item embedding).

Usage: /usr/bin/python3 tests/reference/make_encoder_fixture.py [OUT.h5]
"""
import os
import sys

import h5py
import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pfcr_torch import Hyper, PFCRModel  # noqa: E402

HIDDEN, INNER, LAYERS, HEADS = 32, 24, 2, 2
MAX_LEN, CODE_DIM, CODE_CAP, N_ITEMS = 50, 4, 16, 20
EPS, TEMPERATURE, INIT_RANGE, LR = 1e-12, 0.07, 0.02, 1e-3
LENGTHS = [1, 50, 3, 7, 2, 12]


def main():
    out_path = sys.argv[1] if len(sys.argv) > 1 else "tests/reference/encoder_fixture.h5"
    torch.manual_seed(2020)
    gen = np.random.default_rng(2020)
    torch.set_default_dtype(torch.float64)
    codes = np.zeros((N_ITEMS + 1, CODE_DIM), dtype=np.int64)
    for i in range(1, N_ITEMS + 1):
        codes[i] = np.arange(CODE_DIM) * (CODE_CAP + 1) + gen.integers(0, CODE_CAP, CODE_DIM) + 1
    hp = Hyper(hidden=HIDDEN, inner=INNER, layers=LAYERS, heads=HEADS, max_len=MAX_LEN,
               code_dim=CODE_DIM, code_cap=CODE_CAP, hidden_dropout=0.0, attn_dropout=0.0,
               eps=EPS, temperature=TEMPERATURE, init_range=INIT_RANGE)
    model = PFCRModel(hp, torch.from_numpy(codes))
    # LayerNorm parameters and biases away from 1 / 0 so their gradients matter in the check.
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "LayerNorm" in name or name.endswith("bias"):
                p.add_(0.1 * torch.randn_like(p))
    histories = [gen.integers(1, N_ITEMS + 1, n) for n in LENGTHS]
    targets = torch.from_numpy(gen.integers(1, N_ITEMS + 1, len(LENGTHS)))
    item_seq = torch.zeros(len(LENGTHS), MAX_LEN, dtype=torch.long)          # right padding
    for b, h in enumerate(histories):
        item_seq[b, :len(h)] = torch.from_numpy(h)
    seq_len = torch.tensor(LENGTHS)

    weights = {k: v.detach().clone() for k, v in model.state_dict().items() if k != "pq_codes"}
    loss, logits = model.loss_and_logits(item_seq, seq_len, targets)
    loss.backward()
    grads = {n: p.grad.detach().clone() for n, p in model.named_parameters()}
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    opt.zero_grad()
    for _ in range(3):
        opt.zero_grad()
        l, _ = model.loss_and_logits(item_seq, seq_len, targets)
        l.backward()
        opt.step()
    after = {n: p.detach().clone() for n, p in model.named_parameters()}

    with h5py.File(out_path, "w") as f:
        f.attrs["generator"] = "tests/reference/make_encoder_fixture.py"
        f.attrs["torch_version"] = str(torch.__version__)
        for k, v in dict(hidden_size=HIDDEN, inner_size=INNER, n_layers=LAYERS, n_heads=HEADS,
                         MAX_ITEM_LIST_LENGTH=MAX_LEN, code_dim=CODE_DIM, code_cap=CODE_CAP,
                         n_items=N_ITEMS).items():
            f.attrs[k] = np.int64(v)
        for k, v in dict(layer_norm_eps=EPS, temperature=TEMPERATURE, learning_rate=LR).items():
            f.attrs[k] = np.float64(v)
        f["item_codes"] = codes.astype(np.int32)
        f["batch/indptr"] = np.concatenate([[0], np.cumsum(LENGTHS)]).astype(np.int64)
        f["batch/items"] = np.concatenate(histories).astype(np.int32)
        f["batch/targets"] = targets.numpy().astype(np.int32)
        for k, v in weights.items():
            f[f"weights/{k}"] = v.numpy()
        f["expected/loss"] = np.float64(loss.item())
        f["expected/logits"] = logits.detach().numpy()
        for k, v in grads.items():
            f[f"expected/grad/{k}"] = v.numpy()
        for k, v in after.items():
            f[f"expected/after_3_adam/{k}"] = v.numpy()
    print(f"wrote {out_path}: loss {loss.item():.6f}, {len(weights)} tensors, torch {torch.__version__}")


if __name__ == "__main__":
    main()
