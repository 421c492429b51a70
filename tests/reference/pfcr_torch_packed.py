"""PFCR's sequence model in PyTorch the way a performance-minded user would write it: the same
parameters and the same math as pfcr_torch.PFCRModel (RecBole-style, padded to 50), without the
padding work. The strongest PyTorch baseline of pfcr's benchmark (analysis/bench_pytorch.py,
docs/PERFORMANCE.md), not a fixture reference.

What differs from the padded model, and why it computes the same function:
- token-packed linear layers: every Linear/LayerNorm/GELU runs on the (N, C) matrix of the
  batch's real tokens only (N = sum of history lengths, ~4 per row on Scientific, not 50);
- attention per length group: rows are sorted by length so that the tokens of each length L
  are one contiguous (n_L, L, C) block; a causal mask inside the block needs no key-padding
  mask (the padded model's -10000 key mask underflows exp() to exactly 0, so the padded keys
  contribute nothing there either);
- last layer pruned to the read position: only the hidden state at len-1 is read, and with
  causal attention it depends on every key and value of its row but on the query, attention
  output and feed-forward of that one position only;
- code-mean item embeddings with F.embedding_bag (mode mean over the M codes), the padding row
  0 of the code table kept out of the gradient as nn.Embedding(padding_idx=0) does.
Rows come out in length-sorted order; `pack` returns the permutation so targets follow.
check_equal() compares loss and every gradient with the padded model in double precision
(dropout off).
"""
import math

import torch
import torch.nn.functional as F

from pfcr_torch import Hyper, PFCRModel  # noqa: F401  (Hyper re-exported for callers)


class PackedBatch:
    """A batch laid out for the packed model: rows sorted by history length (stable), their
    tokens concatenated; groups[i] = (L, first row, rows, first token)."""

    def __init__(self, item_seq_list, targets):
        lens = torch.tensor([len(h) for h in item_seq_list], dtype=torch.long)
        order = torch.argsort(lens, stable=True)
        self.order = order
        self.lens = lens[order]
        self.targets = targets[order]
        self.tokens = torch.cat([torch.as_tensor(item_seq_list[i], dtype=torch.long) for i in order.tolist()])
        self.positions = torch.cat([torch.arange(int(n)) for n in self.lens.tolist()])
        self.last = torch.cumsum(self.lens, 0) - 1  # flat index of each row's read position
        self.groups = []
        row, tok = 0, 0
        for L, n in zip(*torch.unique_consecutive(self.lens, return_counts=True)):
            L, n = int(L), int(n)
            self.groups.append((L, row, n, tok))
            row += n
            tok += n * L


class PackedPFCR(PFCRModel):
    """PFCRModel's parameters (same names: state dicts interchange) with a packed forward."""

    def __init__(self, hp, pq_codes):
        super().__init__(hp, pq_codes)
        self.M = pq_codes.size(1)
        # nn.Embedding(padding_idx=0) never updates row 0; embedding_bag has no such rule
        # (its padding_idx would also drop row 0 from the mean's count), so its gradient is cut.
        self.pq_code_embedding.weight.register_hook(lambda g: g.index_fill(0, torch.tensor([0]), 0.0))
        self._causal = {}

    def item_embeddings(self, ids):
        return F.embedding_bag(self.pq_codes[ids], self.pq_code_embedding.weight, mode="mean")

    def causal(self, L, dtype):
        key = (L, dtype)
        if key not in self._causal:
            keep = torch.tril(torch.ones(L, L, dtype=torch.bool))
            self._causal[key] = torch.where(keep, 0.0, -10000.0).to(dtype)
        return self._causal[key]

    def attention(self, mha, x, b, last_only):
        """One MultiHeadAttention block on packed tokens x (N, C); with last_only, only the
        rows' last positions are computed (returns (B, C)), else every token (N, C)."""
        H, d, C = mha.n_heads, mha.head, mha.hidden
        k, v = mha.key(x), mha.value(x)
        q = mha.query(x[b.last] if last_only else x)
        out = []
        for L, row, n, tok in b.groups:
            kg = k[tok:tok + n * L].view(n, L, H, d).transpose(1, 2)  # (n, H, L, d)
            vg = v[tok:tok + n * L].view(n, L, H, d).transpose(1, 2)
            if last_only:
                qg = q[row:row + n].view(n, 1, H, d).transpose(1, 2)  # (n, H, 1, d)
                scores = torch.matmul(qg, kg.transpose(-1, -2)) / math.sqrt(d)
            else:
                qg = q[tok:tok + n * L].view(n, L, H, d).transpose(1, 2)
                scores = torch.matmul(qg, kg.transpose(-1, -2)) / math.sqrt(d) + self.causal(L, x.dtype)
            probs = mha.attn_dropout(torch.softmax(scores, dim=-1))
            ctx = torch.matmul(probs, vg).transpose(1, 2).reshape(-1, C)
            out.append(ctx)
        ctx = torch.cat(out)
        resid = x[b.last] if last_only else x
        return mha.LayerNorm(mha.out_dropout(mha.dense(ctx)) + resid)

    def forward_packed(self, b):
        x = self.item_embeddings(b.tokens) + self.position_embedding(b.positions)
        x = self.dropout(self.LayerNorm(x))
        layers = self.trm_encoder.layer
        for i, layer in enumerate(layers):
            last = i == len(layers) - 1
            x = layer.feed_forward(self.attention(layer.multi_head_attention, x, b, last))
        return x  # (B, C), rows in b's (length-sorted) order

    def loss_packed(self, b):
        s = F.normalize(self.forward_packed(b), dim=-1)
        e = F.normalize(self.item_embeddings(torch.arange(self.pq_codes.size(0))), dim=-1)
        logits = torch.matmul(s, e.transpose(0, 1)) / self.hp.temperature
        return F.cross_entropy(logits, b.targets)


def padded_batch(item_seq_list, targets, width):
    seq = torch.zeros(len(item_seq_list), width, dtype=torch.long)
    for i, h in enumerate(item_seq_list):
        seq[i, :len(h)] = torch.as_tensor(h, dtype=torch.long)
    lens = torch.tensor([len(h) for h in item_seq_list], dtype=torch.long)
    return seq, lens, targets


def check_equal(pq_codes, histories, targets, hp=None, seed=2020):
    """Loss and gradients of the packed and the padded model (same weights, double precision,
    dropout off) -> (|loss difference|, max |gradient difference| / largest |gradient|)."""
    hp = hp or Hyper()
    torch.manual_seed(seed)
    padded = PFCRModel(hp, pq_codes).double().eval()
    packed = PackedPFCR(hp, pq_codes).double().eval()
    packed.load_state_dict(padded.state_dict())
    loss_a, _ = padded.loss_and_logits(*padded_batch(histories, targets, hp.max_len))
    loss_a.backward()
    loss_b = packed.loss_packed(PackedBatch(histories, targets))
    loss_b.backward()
    # Relative to the largest gradient of the model: a tensor whose true gradient is 0 (the
    # key biases: softmax ignores a constant added to every score of a query) holds only
    # rounding noise in both models, so its own maximum is no scale.
    ga = dict(padded.named_parameters())
    scale = max(float(p.grad.abs().max()) for p in padded.parameters())
    worst = max(float((p.grad - ga[name].grad).abs().max()) for name, p in packed.named_parameters())
    return abs(float(loss_a) - float(loss_b)), worst / scale
