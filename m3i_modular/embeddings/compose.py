"""Build an embedding from config: one {"type": ...} part, or named parts summed in order
({"word": {...}, "position": {...}}), so `@embedding.word` can name a part for tying."""
from typing import Any, Dict, Optional, Tuple

import torch
from torch import nn

from ..interfaces import Embedding, Tokens, conforms, need_keyword, needs_of
from ..registry import EMBEDDINGS, build, config_error, config_path


class ComposedEmbedding(nn.Module):
    def __init__(self, parts: Dict[str, nn.Module]):
        super().__init__()
        self.parts = nn.ModuleDict(parts)
        self.dim = next(iter(parts.values())).dim  # the parts add up, so they share one width

    def __getattr__(self, name: str):
        # "@embedding.word" names a part; nn.Module's own lookup (parameters, submodules) comes first
        if not name.startswith("_") and name != "parts":
            parts = super().__getattr__("parts")
            if name in parts:
                return parts[name]
        return super().__getattr__(name)

    @property
    def needs(self) -> Tuple[str, ...]:
        """Every part's needs; each part is handed only its own."""
        return tuple(dict.fromkeys(n for part in self.parts.values() for n in needs_of(part)))

    def forward(self, inputs: torch.Tensor, tokens: Optional[Tokens] = None, **needed: Any) -> Tokens:
        for part in self.parts.values():
            own = {need_keyword(n): needed.get(need_keyword(n)) for n in needs_of(part)}
            tokens = part(inputs, tokens, **own)
        return tokens


def build_embedding(cfg: Any, *, key: str = "embedding") -> nn.Module:
    if isinstance(cfg, dict) and "type" in cfg:
        return build(EMBEDDINGS, cfg, key=key, contract=conforms(Embedding))
    with config_path(key):
        if not isinstance(cfg, dict) or not cfg:
            raise config_error("an embedding is {\"type\": ...} or named parts {\"word\": {...}, ...}")
    return ComposedEmbedding({name: build(EMBEDDINGS, part, key=f"{key}.{name}", contract=conforms(Embedding))
                              for name, part in cfg.items()})
