"""Text classification from label<TAB>text TSV files (finetune/run_classifier.py is the command line): a
pretrained (or randomly initialised) text encoder with a linear head on the mean (or first) token, fine-tuned
(optionally after a linear probe of the head alone, LP-FT) and scored by dev accuracy."""
import os
from typing import List, Optional, Tuple

import torch
from torch import nn

from ..errors import ConfigError, DataError
from ..recipe.config import load_config
from ..recipe.model import build_model
from ..run import build_tokenizer
from ..training import checkpoint as ckpt


def read_tsv(path: str) -> Tuple[List[str], List[str]]:
    labels, texts = [], []
    try:
        f = open(path, encoding="utf-8")
    except OSError as e:
        raise DataError(f"{path}: cannot open ({e.strerror})") from None
    with f:
        for n, line in enumerate(f, 1):
            line = line.rstrip("\n\r")
            if not line.strip():
                continue
            if "\t" not in line:
                raise DataError(f"{path}:{n}: expected label<TAB>text")
            label, text = line.split("\t", 1)
            labels.append(label.strip())
            texts.append(text)
    if not labels:
        raise DataError(f"{path}: no examples")
    return labels, texts


def encode(texts: List[str], tok, length: int) -> torch.Tensor:
    out = torch.full((len(texts), length), int(tok.pad_id or 0), dtype=torch.long)
    head = [] if tok.bos_id is None else [tok.bos_id]
    tail = [] if tok.eos_id is None else [tok.eos_id]
    for i, t in enumerate(texts):
        ids = (head + tok.encode(t)[:length - len(head) - len(tail)] + tail)[:length]
        out[i, :len(ids)] = torch.tensor(ids)
    return out


class Classifier(nn.Module):
    def __init__(self, embedding: nn.Module, encoder: nn.Module, num_labels: int, pad_id: int, pool: str = "mean"):
        super().__init__()
        if pool not in ("mean", "cls"):
            raise ConfigError(f"pool must be mean or cls, got {pool!r}")
        self.embedding, self.encoder, self.pad_id, self.pool = embedding, encoder, pad_id, pool
        self.head = nn.Linear(encoder.dim, num_labels)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        z = self.encoder(self.embedding(ids, segments=torch.zeros_like(ids)))
        if self.pool == "cls":
            return self.head(z[:, 0])
        keep = (ids != self.pad_id).unsqueeze(-1).to(z.dtype)  # mean over the real tokens
        return self.head((z * keep).sum(1) / keep.sum(1).clamp(min=1.0))


def load_backbone(pretrained: Optional[str], config: Optional[str], seed: int):
    if pretrained:
        d = ckpt.resolve_checkpoint(pretrained)
        cfg = ckpt.load_config_json(d)
        model = build_model(cfg["model"], cfg.get("shared"), seed=seed)
        model.load_state_dict(ckpt.load_tensors(d, "model"))
        tok_dir = os.path.join(d, "tokenizer")
        if os.path.isdir(tok_dir):
            from ..data.tokenizers import tokenizer_from_dir
            return model, tokenizer_from_dir(tok_dir)
    elif config:
        cfg = load_config(config)
        model = build_model(cfg["model"], cfg.get("shared"), seed=seed)
    else:
        raise ConfigError("give --pretrained (a checkpoint) or --config (a recipe, random init)")
    tok = build_tokenizer(cfg, base_dir=os.path.dirname(cfg.get("_file", "")))
    if tok is None:
        raise ConfigError("the recipe has no 'tokenizer' section")
    return model, tok


def run(*, train: str, dev: str, pretrained: Optional[str] = None, config: Optional[str] = None,
        epochs: int = 20, lr: float = 1e-3, batch_size: int = 16, seq_length: int = 32, seed: int = 0,
        pool: str = "mean", probe_epochs: int = 0, probe_lr: float = 1e-2) -> dict:
    torch.manual_seed(seed)
    model, tok = load_backbone(pretrained, config, seed)
    tr_labels, tr_texts = read_tsv(train)
    dv_labels, dv_texts = read_tsv(dev)
    names = sorted(set(tr_labels))
    index = {n: i for i, n in enumerate(names)}
    unknown = sorted(set(dv_labels) - set(names))
    if unknown:
        raise DataError(f"{dev}: labels {unknown[:5]} do not occur in {train}")
    clf = Classifier(model.embedding, model.encoder, len(names), int(tok.pad_id or 0), pool)
    x, y = encode(tr_texts, tok, seq_length), torch.tensor([index[n] for n in tr_labels])
    g = torch.Generator().manual_seed(seed)

    def train(params, rate: float, n: int) -> None:
        opt = torch.optim.AdamW(params, lr=rate, weight_decay=0.01)
        for _ in range(n):
            clf.train()
            for b in torch.randperm(len(x), generator=g).split(batch_size):
                loss = nn.functional.cross_entropy(clf(x[b]), y[b])
                opt.zero_grad()
                loss.backward()
                opt.step()

    if probe_epochs:  # linear probe first, then fine-tune: the head starts aligned with the features
        for p in list(clf.embedding.parameters()) + list(clf.encoder.parameters()):
            p.requires_grad_(False)
        train(list(clf.head.parameters()), probe_lr, probe_epochs)
        for p in clf.parameters():
            p.requires_grad_(True)
    train(list(clf.parameters()), lr, epochs)
    clf.eval()
    xd, yd = encode(dv_texts, tok, seq_length), torch.tensor([index[n] for n in dv_labels])
    with torch.no_grad():
        pred = torch.cat([clf(xd[i:i + 256]).argmax(-1) for i in range(0, len(xd), 256)])
    return {"accuracy": float((pred == yd).float().mean()), "train_examples": len(x), "dev_examples": len(xd)}
