"""Key tables: one per foreign format, read in both directions (import and export).

A table maps a format's tensor names to *canonical* names -- timm's ViT names for the image tower
(patch_embed.proj, cls_token, pos_embed with a row for the class token, norm_pre, blocks.N.*, norm), plus
`head.*` (the image projection, (E, D) like a Linear), `text.*` (token_embedding, positional_embedding,
blocks.N.*, norm, proj) and `logit_scale` for CLIP models. tower.py places canonical tensors in our model.

Entry ops: copy; "t" transpose (a (D, E) matrix used as x @ W <-> a Linear's (E, D) weight); "cls" a (D,)
vector <-> (1, 1, D); "pos" an (L, D) table <-> (1, L, D); "cat" several tensors <-> their concatenation on
dim 0 (q, k, v <-> qkv). "{i}" in a name is an image block index, "{t}" a text block index.
"""
import re
from dataclasses import dataclass
from typing import Dict, Iterable, List, Sequence, Set, Tuple

import torch

BLOCK = ("norm1", "attn.qkv", "attn.proj", "norm2", "mlp.fc1", "mlp.fc2")


@dataclass(frozen=True)
class Entry:
    theirs: Tuple[str, ...]
    canon: str
    op: str = "copy"


def entry(theirs, canon: str, op: str = "copy") -> Entry:
    return Entry((theirs,) if isinstance(theirs, str) else tuple(theirs), canon, op)


def params(theirs: str, canon: str, names: Sequence[str] = ("weight", "bias")) -> List[Entry]:
    """One entry per parameter of a module: theirs.weight <-> canon.weight, ..."""
    return [entry(f"{theirs}.{p}", f"{canon}.{p}") for p in names]


def expand(table: Iterable[Entry], image_layers: int, text_layers: int = 0) -> List[Entry]:
    out = []
    for e in table:
        key = "{i}" if any("{i}" in n for n in e.theirs + (e.canon,)) else (
            "{t}" if any("{t}" in n for n in e.theirs + (e.canon,)) else None)
        if key is None:
            out.append(e)
            continue
        for n in range(image_layers if key == "{i}" else text_layers):
            out.append(Entry(tuple(s.replace(key, str(n)) for s in e.theirs), e.canon.replace(key, str(n)), e.op))
    return out


def count_layers(keys: Iterable[str], prefix: str) -> int:
    """How many numbered blocks `prefix.N.` the keys hold (0 if none)."""
    pat = re.compile(re.escape(prefix) + r"\.(\d+)\.")
    found = {int(m.group(1)) for k in keys for m in [pat.match(k)] if m}
    return max(found) + 1 if found else 0


def _in(op: str, ts: List[torch.Tensor]) -> torch.Tensor:
    if op == "cat":
        return torch.cat(ts)
    t = ts[0]
    return {"copy": t, "t": t.t() if t.ndim == 2 else t, "cls": t.reshape(1, 1, -1),
            "pos": t.unsqueeze(0) if t.ndim == 2 else t}[op]


def _out(op: str, t: torch.Tensor, n: int) -> List[torch.Tensor]:
    if op == "cat":
        return list(t.chunk(n))
    return [{"copy": t, "t": t.t() if t.ndim == 2 else t, "cls": t.reshape(-1),
             "pos": t.squeeze(0) if t.ndim == 3 else t}[op]]


def to_canonical(sd: Dict[str, torch.Tensor], table: Iterable[Entry]
                 ) -> Tuple[Dict[str, torch.Tensor], Dict[str, str], Set[str]]:
    """(canonical tensors, canonical name -> their (first) name, their names used)."""
    canon, origin, used = {}, {}, set()
    for e in table:
        if all(n in sd for n in e.theirs):
            canon[e.canon] = _in(e.op, [sd[n] for n in e.theirs])
            origin[e.canon] = e.theirs[0]
            used.update(e.theirs)
    return canon, origin, used


def from_canonical(canon: Dict[str, torch.Tensor], table: Iterable[Entry]) -> Dict[str, torch.Tensor]:
    out = {}
    for e in table:
        if e.canon in canon:
            for name, t in zip(e.theirs, _out(e.op, canon[e.canon], len(e.theirs))):
                out[name] = t
    return {k: v.detach().cpu().contiguous().clone() for k, v in out.items()}
