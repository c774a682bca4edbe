"""A small re-statement of TencentPretrain's model (written for these tests from its published layout): the
same module names, so state_dict() gives TencentPretrain's checkpoint keys, and the same math -- its
LayerNorm (unbiased std, eps outside the root), separate q / k / v projections, additive -10000 masks from
segment ids, gelu / gelu_fast, a bias-free patch projection whose position table covers [CLS], dual
streams with two text LayerNorms, and the mlm / sp / lm / cls / clr heads. Built from a flat config."""
import copy
import math
from argparse import Namespace

import torch
import torch.nn.functional as F
from torch import nn

from convert_utils import perturb

ACT = {"gelu": F.gelu, "gelu_fast": lambda x: 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi)
                                                                           * (x + 0.044715 * x ** 3)))}


class LayerNorm(nn.Module):
    def __init__(self, n, eps=1e-6):
        super().__init__()
        self.eps, self.gamma, self.beta = eps, nn.Parameter(torch.ones(n)), nn.Parameter(torch.zeros(n))

    def forward(self, x):
        mean = x.mean(-1, keepdim=True)
        return self.gamma * (x - mean) / (x.std(-1, keepdim=True) + self.eps) + self.beta


class MultiHeadedAttention(nn.Module):
    def __init__(self, h, heads):
        super().__init__()
        self.heads = heads
        self.linear_layers = nn.ModuleList(nn.Linear(h, h) for _ in range(3))
        self.final_linear = nn.Linear(h, h)

    def forward(self, key, value, query, mask):
        b, n, h = query.shape
        d = h // self.heads
        q, k, v = [lin(x).view(b, -1, self.heads, d).transpose(1, 2)
                   for lin, x in zip(self.linear_layers, (query, key, value))]
        scores = q @ k.transpose(-2, -1) / math.sqrt(d) + mask
        return self.final_linear((scores.softmax(-1) @ v).transpose(1, 2).reshape(b, n, h))


class FeedForward(nn.Module):
    def __init__(self, h, f, act):
        super().__init__()
        self.linear_1, self.linear_2, self.act = nn.Linear(h, f), nn.Linear(f, h), ACT[act]

    def forward(self, x):
        return self.linear_2(self.act(self.linear_1(x)))


class TransformerLayer(nn.Module):
    def __init__(self, a, decoder=False):
        super().__init__()
        self.pre = a.layernorm_positioning == "pre"
        self.self_attn = MultiHeadedAttention(a.hidden_size, a.heads_num)
        if decoder:
            self.context_attn = MultiHeadedAttention(a.hidden_size, a.heads_num)
        self.feed_forward = FeedForward(a.hidden_size, a.feedforward_size, a.hidden_act)
        for i in range(1, 4 if decoder else 3):
            setattr(self, f"layer_norm_{i}", LayerNorm(a.hidden_size))

    def forward(self, x, mask, memory=None, mask_mem=None):
        if memory is None:
            if not self.pre:
                x = self.layer_norm_1(x + self.self_attn(x, x, x, mask))
                return self.layer_norm_2(x + self.feed_forward(x))
            y = self.layer_norm_1(x)
            x = x + self.self_attn(y, y, y, mask)
            return x + self.feed_forward(self.layer_norm_2(x))
        if not self.pre:
            x = self.layer_norm_1(x + self.self_attn(x, x, x, mask))
            x = self.layer_norm_2(x + self.context_attn(memory, memory, x, mask_mem))
            return self.layer_norm_3(x + self.feed_forward(x))
        y = self.layer_norm_1(x)
        x = x + self.self_attn(y, y, y, mask)
        x = x + self.context_attn(memory, memory, self.layer_norm_2(x), mask_mem)
        return x + self.feed_forward(self.layer_norm_3(x))


def _mask(seg, n_q, causal):
    if causal:
        return (1.0 - torch.ones(n_q, n_q).tril()) * -10000.0
    return (1.0 - (seg > 0).float())[:, None, None, :] * -10000.0


class TransformerEncoder(nn.Module):
    def __init__(self, a):
        super().__init__()
        self.causal, self.pre = a.mask == "causal", a.layernorm_positioning == "pre"
        self.transformer = nn.ModuleList(TransformerLayer(a) for _ in range(a.layers_num))
        if self.pre:
            self.layer_norm = LayerNorm(a.hidden_size)

    def forward(self, emb, seg):
        mask = _mask(seg, emb.shape[1], self.causal)
        for layer in self.transformer:
            emb = layer(emb, mask)
        return self.layer_norm(emb) if self.pre else emb


class TransformerDecoder(nn.Module):
    def __init__(self, a):
        super().__init__()
        self.pre = a.layernorm_positioning == "pre"
        self.transformer_decoder = nn.ModuleList(TransformerLayer(a, True) for _ in range(a.decoder_layers_num))
        if self.pre:
            self.layer_norm = LayerNorm(a.hidden_size)

    def forward(self, memory, emb, src_seg):
        mask, mask_mem = _mask(None, emb.shape[1], True), _mask(src_seg, 0, False)
        for layer in self.transformer_decoder:
            emb = layer(emb, mask, memory, mask_mem)
        return self.layer_norm(emb) if self.pre else emb


class Table(nn.Module):
    def __init__(self, n, h):
        super().__init__()
        self.embedding = nn.Embedding(n, h)


class PatchEmbedding(nn.Module):
    def __init__(self, a):
        super().__init__()
        self.cls_emb = nn.Parameter(torch.zeros(1, 1, a.emb_size))
        self.projection = nn.Conv2d(3, a.emb_size, a.patch_size, a.patch_size, bias=False)

    def forward(self, src):
        x = self.projection(src).flatten(2).transpose(1, 2)
        return torch.cat([self.cls_emb.expand(x.shape[0], -1, -1), x], dim=1)


class Embedding(nn.Module):
    def __init__(self, a, vocab, names):
        super().__init__()
        self.names = names
        for n in names:
            size = {"word": vocab, "pos": a.max_seq_length, "seg": 3}.get(n)
            setattr(self, n, PatchEmbedding(a) if n == "patch" else Table(size, a.emb_size))
        if not a.remove_embedding_layernorm:
            self.layer_norm = LayerNorm(a.emb_size)

    def forward(self, src, seg):
        emb = self.patch(src) if "patch" in self.names else self.word.embedding(src)
        n = emb.shape[1]
        if "pos" in self.names:
            emb = emb + self.pos.embedding(torch.arange(n))[None]
        if "seg" in self.names:
            emb = emb + self.seg.embedding(seg)
        return self.layer_norm(emb) if hasattr(self, "layer_norm") else emb


def _args(cfg, **over):
    d = dict(dict(layernorm_positioning="post", hidden_act="gelu", mask="fully_visible", dropout=0.0,
                  remove_embedding_layernorm=False, tie_weights=False), **cfg)
    d.update(over)
    return Namespace(**d)


class Head(nn.Module):
    def __init__(self, **mods):
        super().__init__()
        for k, v in mods.items():
            setattr(self, k, v)


class TPModel(nn.Module):
    """TencentPretrain's Model(embedding, encoder, tgt_embedding, decoder, target) for one flat config."""

    def __init__(self, cfg, vocab):
        super().__init__()
        a = _args(cfg)
        self.dual = "stream_0" in cfg
        if self.dual:
            s = [_args(copy.deepcopy(cfg), **cfg[f"stream_{i}"]) for i in (0, 1)]
            self.embedding = Head(embedding_0=Embedding(s[0], vocab, s[0].embedding),
                                  embedding_1=Embedding(s[1], vocab, s[1].embedding))
            for i in (0, 1):
                if not s[i].remove_embedding_layernorm:
                    setattr(self.embedding, f"stream_{i}_layer_norm", LayerNorm(s[i].emb_size))
            self.encoder = Head(encoder_0=TransformerEncoder(s[0]), encoder_1=TransformerEncoder(s[1]))
            proj = [nn.Parameter(torch.randn(s[i].hidden_size, a.feature_size)) for i in (0, 1)]
            self.target = Head(clr=Head(logit_scale=nn.Parameter(torch.tensor(math.log(1 / 0.07))),
                                        encoder_0_projection=proj[0], encoder_1_projection=proj[1]))
            return
        h = a.hidden_size
        self.embedding = Embedding(a, vocab, a.embedding)
        self.encoder = TransformerEncoder(a)
        if getattr(a, "decoder", None):
            self.tgt_embedding = Embedding(a, vocab, a.tgt_embedding)
            self.decoder = TransformerDecoder(a)
        heads = {}
        for t in a.target:
            if t == "mlm":
                heads[t] = Head(linear_1=nn.Linear(h, h), layer_norm=LayerNorm(h), linear_2=nn.Linear(h, vocab))
            elif t in ("sp", "cls"):
                heads[t] = Head(linear_1=nn.Linear(h, h), linear_2=nn.Linear(h, getattr(a, "labels_num", 2)))
            elif t == "lm":
                heads[t] = Head(output_layer=nn.Linear(h, vocab, bias=getattr(a, "has_lmtarget_bias", False)))
        self.target = Head(**heads)
        word = self.embedding.word.embedding.weight if "word" in a.embedding else None
        if "mlm" in heads and a.tie_weights:
            heads["mlm"].linear_2.weight = word
        if "lm" in heads and a.tie_weights:
            heads["lm"].output_layer.weight = word
        if getattr(a, "share_embedding", False):
            self.tgt_embedding.word.embedding.weight = word

    def perturb(self, seed=0):
        return perturb(self, seed)

    def encode(self, src, seg):
        return self.encoder(self.embedding(src, seg), seg)

    def clip_features(self, images, text, text_seg):
        """(image features, text features) before normalisation, as ClrTarget computes them."""
        e, c = self.embedding, self.target.clr
        t = e.embedding_0(text, text_seg)
        if hasattr(e, "stream_0_layer_norm"):
            t = e.stream_0_layer_norm(t)
        n = 1 + (images.shape[-1] // e.embedding_1.patch.projection.kernel_size[0]) ** 2
        img_seg = torch.ones(images.shape[0], n, dtype=torch.long)
        zi = self.encoder.encoder_1(e.embedding_1(images, None), img_seg)
        zt = self.encoder.encoder_0(t, text_seg)
        return zi[:, 0] @ c.encoder_1_projection, zt[:, 0] @ c.encoder_0_projection

    def decode(self, src, seg, tgt_in):
        memory = self.encode(src, seg)
        return self.decoder(memory, self.tgt_embedding(tgt_in, None), seg)
