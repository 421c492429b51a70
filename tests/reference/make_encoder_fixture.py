#!/usr/bin/python3
"""Writes tests/reference/encoder_fixture.h5: a small PFCR/RecBole sequence model in PyTorch
(Debian's python3-torch 1.13; not run in CI), its weights under their state_dict names, one
batch with varied history lengths (1 .. 50), and the expected loss, logits, every parameter
gradient, and the parameters after 3 Adam steps, all with dropout off and in float64.

The model is written out here from RecBole 1.0.1's TransformerEncoder / MultiHeadAttention /
FeedForward and PFCR's VQRec-style code-mean item embedding (PFCR.md §3-5): post-LN layers,
causal + key-padding mask with -10000, exact-erf GELU, position embeddings, LayerNorm and
dropout on the input, the hidden state at len-1, cosine logits over all items / temperature,
cross-entropy with the padding item as a class, pq_code_embedding with padding_idx=0.

Usage: /usr/bin/python3 tests/reference/make_encoder_fixture.py [OUT.h5]
"""
import math
import sys

import h5py
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

HIDDEN, INNER, LAYERS, HEADS = 32, 24, 2, 2
MAX_LEN, CODE_DIM, CODE_CAP, N_ITEMS = 50, 4, 16, 20
EPS, TEMPERATURE, INIT_RANGE, LR = 1e-12, 0.07, 0.02, 1e-3
LENGTHS = [1, 50, 3, 7, 2, 12]


class MultiHeadAttention(nn.Module):
    def __init__(self):
        super().__init__()
        self.n_heads, self.head = HEADS, HIDDEN // HEADS
        self.query = nn.Linear(HIDDEN, HIDDEN)
        self.key = nn.Linear(HIDDEN, HIDDEN)
        self.value = nn.Linear(HIDDEN, HIDDEN)
        self.dense = nn.Linear(HIDDEN, HIDDEN)
        self.LayerNorm = nn.LayerNorm(HIDDEN, eps=EPS)

    def split(self, x):
        return x.view(x.size(0), x.size(1), self.n_heads, self.head).permute(0, 2, 1, 3)

    def forward(self, x, mask):
        q, k, v = self.split(self.query(x)), self.split(self.key(x)), self.split(self.value(x))
        scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(self.head) + mask
        probs = nn.Softmax(dim=-1)(scores)  # attn_dropout: p = 0 here
        ctx = torch.matmul(probs, v).permute(0, 2, 1, 3).contiguous()
        ctx = ctx.view(x.size(0), x.size(1), HIDDEN)
        return self.LayerNorm(self.dense(ctx) + x)  # out_dropout: p = 0 here


class FeedForward(nn.Module):
    def __init__(self):
        super().__init__()
        self.dense_1 = nn.Linear(HIDDEN, INNER)
        self.dense_2 = nn.Linear(INNER, HIDDEN)
        self.LayerNorm = nn.LayerNorm(HIDDEN, eps=EPS)

    def forward(self, x):
        h = self.dense_1(x)
        h = h * 0.5 * (1.0 + torch.erf(h / math.sqrt(2.0)))  # RecBole's gelu
        return self.LayerNorm(self.dense_2(h) + x)


class Layer(nn.Module):
    def __init__(self):
        super().__init__()
        self.multi_head_attention = MultiHeadAttention()
        self.feed_forward = FeedForward()

    def forward(self, x, mask):
        return self.feed_forward(self.multi_head_attention(x, mask))


class Encoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.layer = nn.ModuleList([Layer() for _ in range(LAYERS)])

    def forward(self, x, mask):
        for layer in self.layer:
            x = layer(x, mask)
        return x


class PFCRModel(nn.Module):
    def __init__(self, pq_codes):
        super().__init__()
        self.register_buffer("pq_codes", pq_codes)  # (V+1, M) code-table rows, row 0 = padding
        self.pq_code_embedding = nn.Embedding(CODE_DIM * (1 + CODE_CAP), HIDDEN, padding_idx=0)
        self.trm_encoder = Encoder()
        self.position_embedding = nn.Embedding(MAX_LEN, HIDDEN)
        self.LayerNorm = nn.LayerNorm(HIDDEN, eps=EPS)
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(module):  # RecBole: normal(0, initializer_range) incl. the padding row
        if isinstance(module, (nn.Linear, nn.Embedding)):
            module.weight.data.normal_(mean=0.0, std=INIT_RANGE)
        elif isinstance(module, nn.LayerNorm):
            module.bias.data.zero_()
            module.weight.data.fill_(1.0)
        if isinstance(module, nn.Linear) and module.bias is not None:
            module.bias.data.zero_()

    def item_embeddings(self, ids):
        return self.pq_code_embedding(self.pq_codes[ids]).mean(dim=-2)

    def forward(self, item_seq, item_seq_len):
        pos = torch.arange(item_seq.size(1), dtype=torch.long).unsqueeze(0).expand_as(item_seq)
        x = self.LayerNorm(self.item_embeddings(item_seq) + self.position_embedding(pos))
        keep = (item_seq > 0).unsqueeze(1).unsqueeze(2)                       # key padding
        causal = torch.tril(torch.ones(item_seq.size(1), item_seq.size(1), dtype=torch.bool))
        mask = torch.where(keep & causal, 0.0, -10000.0).to(x.dtype)
        out = self.trm_encoder(x, mask)
        return out[torch.arange(out.size(0)), item_seq_len - 1]             # gather len-1

    def loss_and_logits(self, item_seq, item_seq_len, targets):
        s = F.normalize(self.forward(item_seq, item_seq_len), dim=-1)
        e = F.normalize(self.item_embeddings(torch.arange(N_ITEMS + 1)), dim=-1)
        logits = torch.matmul(s, e.transpose(0, 1)) / TEMPERATURE
        return F.cross_entropy(logits, targets), logits


def main():
    out_path = sys.argv[1] if len(sys.argv) > 1 else "tests/reference/encoder_fixture.h5"
    torch.manual_seed(2020)
    gen = np.random.default_rng(2020)
    torch.set_default_dtype(torch.float64)
    codes = np.zeros((N_ITEMS + 1, CODE_DIM), dtype=np.int64)
    for i in range(1, N_ITEMS + 1):
        codes[i] = np.arange(CODE_DIM) * (CODE_CAP + 1) + gen.integers(0, CODE_CAP, CODE_DIM) + 1
    model = PFCRModel(torch.from_numpy(codes))
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
