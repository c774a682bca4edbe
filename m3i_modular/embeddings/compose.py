"""Build an embedding from config: one {"type": ...} part, or named parts summed in order
({"word": {...}, "position": {...}}), so `@embedding.word` can name a part for tying."""
from typing import Any, Dict, Optional

import torch
from torch import nn

from ..registry import EMBEDDINGS, build, config_error, config_path
from .tokens import Tokens


class ComposedEmbedding(nn.Module):
    def __init__(self, parts: Dict[str, nn.Module]):
        super().__init__()
        self.parts = nn.ModuleDict(parts)

    def __getattr__(self, name: str):
        parts = self.__dict__["_modules"]["parts"]  # nn.Module.__getattr__ cannot look up _modules itself
        if name in parts:
            return parts[name]
        return super().__getattr__(name)

    def forward(self, inputs: torch.Tensor, tokens: Optional[Tokens] = None, **ctx) -> Tokens:
        for part in self.parts.values():
            tokens = part(inputs, tokens, **ctx)
        return tokens

    @property
    def num_prefix(self) -> int:
        return getattr(next(iter(self.parts.values())), "num_prefix", 0)


def build_embedding(cfg: Any, *, key: str = "embedding") -> nn.Module:
    if isinstance(cfg, dict) and "type" in cfg:
        return build(EMBEDDINGS, cfg, key=key)
    with config_path(key):
        if not isinstance(cfg, dict) or not cfg:
            raise config_error("an embedding is {\"type\": ...} or named parts {\"word\": {...}, ...}")
    return ComposedEmbedding({name: build(EMBEDDINGS, part, key=f"{key}.{name}") for name, part in cfg.items()})
