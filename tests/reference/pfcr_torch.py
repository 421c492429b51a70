"""PFCR's sequence model in PyTorch, written out from RecBole 1.0.1's TransformerEncoder /
MultiHeadAttention / FeedForward and PFCR's VQRec-style code-mean item embedding (docs/METHOD.md §3-5):
post-LN layers, causal + key-padding mask with -10000, exact-erf GELU, position embeddings,
LayerNorm and dropout on the input, the hidden state at len-1, cosine logits over all items /
temperature, cross-entropy with the padding item as a class, pq_code_embedding with
padding_idx=0. Plus PFCR's two prompt-tuning heads (docs/METHOD.md §8), written out from the authors'
model/light_prompt.py (seq_prompt) and model/full_prompt.py (id_prompt): LightPromptModel and
FullPromptModel, with freeze_like_reference() as prompt_finetune.py freezes. The reference of
pfcr's parity fixtures and of its PyTorch benchmark; not in CI.
"""
import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass
class Hyper:
    hidden: int = 300
    inner: int = 256
    layers: int = 2
    heads: int = 2
    max_len: int = 50
    code_dim: int = 32
    code_cap: int = 256
    hidden_dropout: float = 0.5
    attn_dropout: float = 0.5
    eps: float = 1e-12
    temperature: float = 0.07
    init_range: float = 0.02


class MultiHeadAttention(nn.Module):
    def __init__(self, hp):
        super().__init__()
        self.hidden, self.n_heads, self.head = hp.hidden, hp.heads, hp.hidden // hp.heads
        self.query = nn.Linear(hp.hidden, hp.hidden)
        self.key = nn.Linear(hp.hidden, hp.hidden)
        self.value = nn.Linear(hp.hidden, hp.hidden)
        self.attn_dropout = nn.Dropout(hp.attn_dropout)
        self.dense = nn.Linear(hp.hidden, hp.hidden)
        self.LayerNorm = nn.LayerNorm(hp.hidden, eps=hp.eps)
        self.out_dropout = nn.Dropout(hp.hidden_dropout)

    def split(self, x):
        return x.view(x.size(0), x.size(1), self.n_heads, self.head).permute(0, 2, 1, 3)

    def forward(self, x, mask):
        q, k, v = self.split(self.query(x)), self.split(self.key(x)), self.split(self.value(x))
        scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(self.head) + mask
        probs = self.attn_dropout(nn.Softmax(dim=-1)(scores))
        ctx = torch.matmul(probs, v).permute(0, 2, 1, 3).contiguous()
        ctx = ctx.view(x.size(0), x.size(1), self.hidden)
        return self.LayerNorm(self.out_dropout(self.dense(ctx)) + x)


class FeedForward(nn.Module):
    def __init__(self, hp):
        super().__init__()
        self.dense_1 = nn.Linear(hp.hidden, hp.inner)
        self.dense_2 = nn.Linear(hp.inner, hp.hidden)
        self.LayerNorm = nn.LayerNorm(hp.hidden, eps=hp.eps)
        self.dropout = nn.Dropout(hp.hidden_dropout)

    def forward(self, x):
        h = self.dense_1(x)
        h = h * 0.5 * (1.0 + torch.erf(h / math.sqrt(2.0)))  # RecBole's gelu
        return self.LayerNorm(self.dropout(self.dense_2(h)) + x)


class Layer(nn.Module):
    def __init__(self, hp):
        super().__init__()
        self.multi_head_attention = MultiHeadAttention(hp)
        self.feed_forward = FeedForward(hp)

    def forward(self, x, mask):
        return self.feed_forward(self.multi_head_attention(x, mask))


class Encoder(nn.Module):
    def __init__(self, hp):
        super().__init__()
        self.layer = nn.ModuleList([Layer(hp) for _ in range(hp.layers)])

    def forward(self, x, mask):
        for layer in self.layer:
            x = layer(x, mask)
        return x


class PFCRModel(nn.Module):
    def __init__(self, hp, pq_codes):
        super().__init__()
        self.hp = hp
        self.register_buffer("pq_codes", pq_codes)  # (V+1, M) code-table rows, row 0 = padding
        self.pq_code_embedding = nn.Embedding(hp.code_dim * (1 + hp.code_cap), hp.hidden,
                                              padding_idx=0)
        self.trm_encoder = Encoder(hp)
        self.position_embedding = nn.Embedding(hp.max_len, hp.hidden)
        self.LayerNorm = nn.LayerNorm(hp.hidden, eps=hp.eps)
        self.dropout = nn.Dropout(hp.hidden_dropout)
        self.apply(lambda m: self._init_weights(m, hp.init_range))

    @staticmethod
    def _init_weights(module, init_range):  # RecBole: N(0, range) incl. the padding row
        if isinstance(module, (nn.Linear, nn.Embedding)):
            module.weight.data.normal_(mean=0.0, std=init_range)
        elif isinstance(module, nn.LayerNorm):
            module.bias.data.zero_()
            module.weight.data.fill_(1.0)
        if isinstance(module, nn.Linear) and module.bias is not None:
            module.bias.data.zero_()

    def item_embeddings(self, ids):
        return self.pq_code_embedding(self.pq_codes[ids]).mean(dim=-2)

    def positions(self, item_seq):
        pos = torch.arange(item_seq.size(1), dtype=torch.long).unsqueeze(0).expand_as(item_seq)
        return self.position_embedding(pos)

    @staticmethod
    def attention_mask(item_seq, dtype):  # RecBole get_attention_mask: causal + key padding
        keep = (item_seq > 0).unsqueeze(1).unsqueeze(2)
        causal = torch.tril(torch.ones(item_seq.size(1), item_seq.size(1), dtype=torch.bool))
        return torch.where(keep & causal, 0.0, -10000.0).to(dtype)

    def forward(self, item_seq, item_seq_len):
        x = self.LayerNorm(self.item_embeddings(item_seq) + self.positions(item_seq))
        x = self.dropout(x)
        out = self.trm_encoder(x, self.attention_mask(item_seq, x.dtype))
        return out[torch.arange(out.size(0)), item_seq_len - 1]             # gather len-1

    def loss_and_logits(self, item_seq, item_seq_len, targets):
        s = F.normalize(self.forward(item_seq, item_seq_len), dim=-1)
        e = F.normalize(self.item_embeddings(torch.arange(self.pq_codes.size(0))), dim=-1)
        logits = torch.matmul(s, e.transpose(0, 1)) / self.hp.temperature
        return F.cross_entropy(logits, targets), logits


def freeze_like_reference(model):
    """prompt_finetune.py: the pre-trained encoder is frozen except the code table."""
    for p in model.vqrec.parameters():
        p.requires_grad = False
    for p in model.vqrec.pq_code_embedding.parameters():
        p.requires_grad = True


class PromptHead(nn.Module):
    """What both heads share: the prompts, the prompt attention and the cosine loss."""

    def init_prompts(self, hp, n_prompts, prompt_heads):
        self.prompts = nn.Parameter(torch.randn(n_prompts, hp.hidden))
        nn.init.xavier_uniform_(self.prompts)

    def get_prompt(self, seq_out):  # seq_out (B,1,C): batch_first=False reads it as (L=B, N=1)
        prompt = self.prompts.unsqueeze(1)
        prompt, _ = self.attn_layer(seq_out, prompt, prompt)
        return prompt

    def loss_and_logits(self, item_seq, item_seq_len, targets):
        o = F.normalize(self.output(item_seq, item_seq_len), dim=-1)
        e = F.normalize(self.vqrec.item_embeddings(torch.arange(self.vqrec.pq_codes.size(0))),
                        dim=-1)
        logits = torch.matmul(o, e.transpose(0, 1)) / self.vqrec.hp.temperature
        return F.cross_entropy(logits, targets), logits


class LightPromptModel(PromptHead):
    """seq_prompt: o = s + MHA(s, P, P)."""

    def __init__(self, hp, pq_codes, n_prompts=1024, prompt_heads=4):
        super().__init__()
        self.init_prompts(hp, n_prompts, prompt_heads)
        self.vqrec = PFCRModel(hp, pq_codes)
        self.attn_layer = nn.MultiheadAttention(hp.hidden, num_heads=prompt_heads)

    def output(self, item_seq, item_seq_len):
        s = self.vqrec(item_seq, item_seq_len)
        return s + self.get_prompt(s.unsqueeze(1)).squeeze(1)


class FullPromptModel(PromptHead):
    """id_prompt: o = Dropout(LN(concat_layer([MHA(s, P, P); ID branch; s]))). The ID branch's
    Transformer and the Linear layers keep PyTorch's default init (id_prompt never applies
    RecBole's _init_weights); one LayerNorm and one Dropout module serve both places."""

    def __init__(self, hp, pq_codes, n_items, n_prompts=1024, prompt_heads=4):
        super().__init__()
        self.item_embedding = nn.Embedding(n_items, hp.hidden, padding_idx=0)  # n_items incl. pad
        self.init_prompts(hp, n_prompts, prompt_heads)
        self.item_trm_encoder = Encoder(hp)
        self.LayerNorm = nn.LayerNorm(hp.hidden, eps=hp.eps)
        self.dropout = nn.Dropout(hp.hidden_dropout)
        self.vqrec = PFCRModel(hp, pq_codes)
        self.attn_layer = nn.MultiheadAttention(hp.hidden, num_heads=prompt_heads)
        self.concat_layer = nn.Linear(hp.hidden * 3, hp.hidden)

    def output(self, item_seq, item_seq_len):
        item_emb = self.item_embedding(item_seq) + self.vqrec.positions(item_seq)
        x = self.dropout(self.LayerNorm(item_emb))
        out = self.item_trm_encoder(x, self.vqrec.attention_mask(item_seq, x.dtype))
        item_output = out[torch.arange(out.size(0)), item_seq_len - 1]
        feature_output = self.vqrec(item_seq, item_seq_len)
        prompt = self.get_prompt(feature_output.unsqueeze(1)).squeeze(1)
        o = self.concat_layer(torch.cat((prompt, item_output, feature_output), -1))
        return self.dropout(self.LayerNorm(o))
