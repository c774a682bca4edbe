"""`text_tower`: captions -> one vector each (CLIP / M3I's text target). Word + position embeddings and a
causal transformer, each built from the registry (so their keys are validated with full JSON paths), then
the EOS token (the last non-padding one; or the mean, or the first token) through a linear map to `dim`.

Returns the batch's text embeddings as candidates for InfoNCE: row i's right candidate is caption i;
captions that are absent (batch["present"]["text"] false) are neither targets nor negatives."""
from dataclasses import replace

import torch
from torch import nn

from ..embeddings import build_embedding
from ..interfaces import Encoder, TargetOut, conforms, tower_width_problem
from ..registry import ENCODERS, TARGET_EMBEDDINGS, build, config_error


@TARGET_EMBEDDINGS.register("text_tower")
class TextTower(nn.Module):
    def __init__(self, *, embedding: dict, encoder: dict, dim: int, pool: str = "eos"):
        super().__init__()
        if pool not in ("eos", "mean", "first"):
            raise config_error(f"pool must be eos, mean or first, got '{pool}'", "pool")
        self.pool, self.dim = pool, dim
        self.embedding = build_embedding(embedding, key="embedding")
        enc_cfg = dict(encoder)
        enc_cfg.setdefault("causal", True)
        self.encoder = build(ENCODERS, enc_cfg, key="encoder", contract=conforms(Encoder))
        if tower_width_problem(self.embedding, self.encoder):
            raise config_error(tower_width_problem(self.embedding, self.encoder), "encoder")
        self.proj = nn.Linear(self.encoder.dim, dim, bias=False)
        nn.init.normal_(self.proj.weight, std=self.encoder.dim ** -0.5)

    def forward(self, batch: dict, *, view: str = "text") -> TargetOut:
        if view not in batch:
            raise config_error(f"text_tower reads batch['{view}'], which is absent: give the recipe a "
                               f"\"tokenizer\" so captions are tokenized")
        ids = batch[view]
        b = ids.shape[0]
        present = batch.get("present", {}).get(view)
        valid = torch.ones(b, dtype=torch.bool, device=ids.device) if present is None else present.to(ids.device)
        tokens = self.embedding(ids)
        pad = tokens.pad_mask.clone()
        # an absent caption is all padding: leave its first position attendable so attention stays finite
        pad[:, 0] = False
        z = self.encoder(replace(tokens, pad_mask=pad))
        if self.pool == "eos":
            last = (~pad).sum(1).clamp(min=1) - 1
            feat = z[torch.arange(b, device=z.device), last]
        elif self.pool == "first":  # a bidirectional tower's [CLS] (TencentPretrain's CLIP text stream)
            feat = z[:, 0]
        else:
            keep = (~pad).unsqueeze(-1).to(z.dtype)
            feat = (z * keep).sum(1) / keep.sum(1)
        out = self.proj(feat)
        rows = torch.arange(b, device=ids.device)
        return TargetOut(valid=valid, candidates=out, index=rows, candidates_per_row=True, candidate_valid=valid)
