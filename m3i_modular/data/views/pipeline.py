"""Sources -> named views, tokenized text -> the batch dict the model reads.

    views = build_views(cfg["views"])
    ds = PretrainDataset(cfg["data"], views, tokenizer=tok, seed=cfg["train"]["seed"])
    loader = DataLoader(ds, batch_size=b, sampler=PositionSampler(start=consumed), collate_fn=collate)

Every augmentation draw comes from a generator seeded by (seed, global position, view name), so a sample
looks the same whichever worker builds it and whether or not the run was resumed.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence

import torch
from torch.utils.data import Dataset

from ...errors import DataError
from ...registry import DATASETS, TRANSFORMS, build, config_error, config_path
from ...recipe.sections import DataConfig
from .. import sources as _sources  # noqa: F401  (registers the built-in sources)
from . import audio_transforms as _audio_transforms  # noqa: F401  (registers the audio transforms)
from . import maskers as _maskers  # noqa: F401  (registers the maskers)
from ..sampling import epoch_order, generator
from .transforms import Transform
from .view import View

# batch["present"][field] says which samples carry a field; raw-sample key -> batch field
PRESENT_FIELDS = {"label": "label", "caption": "text", "audio": "audio"}


def build_views(views_cfg: Dict[str, list]) -> Dict[str, List[Transform]]:
    """{"view1": [{"type": ...}, ...]} -> {"view1": [transform, ...]}, errors located at views.<name>[i]."""
    with config_path("views", absolute=True):
        if not isinstance(views_cfg, dict) or not views_cfg:
            raise config_error("expected an object of named views, each a list of transforms")
        views = {}
        for name, steps in views_cfg.items():
            with config_path(name):
                if not isinstance(steps, list):
                    raise config_error(f"view '{name}' must be a list of transforms, got {steps!r}")
                built = [build(TRANSFORMS, step, key=i) for i, step in enumerate(steps)]
                _check_order(built)
            views[name] = built
    return views


def view_field(steps: Sequence[Transform]) -> str:
    """The raw-sample field a view reads: "image" by default, or what its transforms declare ("audio")."""
    return getattr(steps[0], "reads", "image") if steps else "image"


def _check_order(steps: List[Transform]) -> None:
    field = view_field(steps)
    for i, t in enumerate(steps):
        if getattr(t, "reads", "image") != field:
            raise config_error(f"'{t.registry_name}' reads the {getattr(t, 'reads', 'image')}, but this view's "
                               f"first step reads the {field}: one view takes one modality", i)
    if field == "audio" and not any(getattr(t, "featurizer", False) for t in steps):
        raise config_error("an audio view must turn the waveform into features: add an 'fbank' step")
    masked_at = None
    for i, t in enumerate(steps):
        if getattr(t, "masker", False):
            if masked_at is not None:
                raise config_error(f"a view takes one masker; steps {masked_at} and {i} both mask", i)
            masked_at = i
        elif masked_at is not None and getattr(t, "geometric", False):
            raise config_error(f"'{t.registry_name}' moves pixels after the masker at step {masked_at}; "
                               f"put crops, resizes and flips before it", i)


def apply_view(steps: Sequence[Transform], value: Any, g: torch.Generator) -> Any:
    """Run one named view's transforms on a raw uint8 (3, H, W) image (-> View), or on an Audio for a view
    of audio transforms (-> Audio)."""
    view = value if view_field(steps) != "image" else View.from_uint8(value)
    for t in steps:
        view = t(view, g)
    return view


def encode_text(caption: Optional[str], tokenizer: Any, length: int) -> torch.Tensor:
    """BOS + ids + EOS, content truncated so EOS always survives, padded with pad_id to `length`."""
    bos, eos = getattr(tokenizer, "bos_id", None), getattr(tokenizer, "eos_id", None)
    out = torch.full((length,), int(tokenizer.pad_id), dtype=torch.long)
    if caption is None:
        return out
    head = [] if bos is None else [int(bos)]
    tail = [] if eos is None else [int(eos)]
    room = max(0, length - len(head) - len(tail))
    ids = head + [int(i) for i in tokenizer.encode(caption)][:room] + tail
    out[:len(ids)] = torch.tensor(ids[:length], dtype=torch.long)
    return out


class PretrainDataset(Dataset):
    """Map-style over global positions: item p is slot p % epoch_size of epoch p // epoch_size.

    data_cfg: the recipe's "data" section, {"sources": [{"type": ..., "weight": w, **kwargs}], ...}, its keys
    those of sections.DataConfig (epoch_size defaults to the sum of the sources' lengths). `len()` is the epoch
    size; indices beyond it are later epochs, which a PositionSampler produces.
    """

    def __init__(self, data_cfg: Dict[str, Any], views: Dict[str, List[Transform]], *, tokenizer: Any = None,
                 seed: int = 0):
        spec = DataConfig.from_config(data_cfg)
        with config_path("data", absolute=True):
            self.sources, self.weights = self._build_sources(spec.sources)
        self.text_length, self.max_retries = spec.text_length, spec.max_retries
        self.max_skip_share = spec.max_skip_share
        self.epoch_size = spec.epoch_size or sum(len(s) for s in self.sources)
        if tokenizer is not None and not hasattr(tokenizer, "pad_id"):
            raise TypeError("the tokenizer needs encode(text) -> list[int] and pad_id / bos_id / eos_id")
        self.views, self.tokenizer, self.seed = views, tokenizer, seed
        self._orders: Dict[int, tuple] = {}

    @staticmethod
    def _build_sources(cfgs: List[Any]):
        """Each entry: a registered dataset's config plus its "weight" (default 1)."""
        sources, weights = [], []
        for i, cfg in enumerate(cfgs):
            with config_path("sources"):
                if not isinstance(cfg, dict):
                    raise config_error(f"expected an object with a 'type', got {cfg!r}", i)
                w = cfg.get("weight", 1.0)
                if isinstance(w, bool) or not isinstance(w, (int, float)) or w < 0:
                    with config_path(i):
                        raise config_error(f"weight must be a number >= 0, got {w!r}", "weight")
                source = build(DATASETS, {k: v for k, v in cfg.items() if k != "weight"}, key=i)
                if len(source) < 1:
                    raise config_error("source is empty", i)
            sources.append(source)
            weights.append(float(w))
        if sum(weights) <= 0:
            raise config_error("at least one source needs a positive weight", "sources")
        return sources, weights

    def __len__(self) -> int:
        return self.epoch_size

    def order(self, epoch: int):
        """(source ids, indices) of one epoch, cached for the last two epochs a worker touched."""
        if epoch not in self._orders:
            if len(self._orders) >= 2:
                self._orders.pop(min(self._orders))
            self._orders[epoch] = epoch_order(self.weights, [len(s) for s in self.sources], self.epoch_size,
                                              self.seed, epoch)
        return self._orders[epoch]

    def locate(self, position: int):
        """Global position -> (source id, index within that source)."""
        epoch, slot = divmod(int(position), self.epoch_size)
        source, index = self.order(epoch)
        return int(source[slot]), int(index[slot])

    def read(self, position: int):
        """The raw sample for a position, substituting unreadable ones deterministically.

        A source signals a corrupt sample by raising DataError (or returning None); the next index of the same
        source is tried (so source shares hold), up to `max_retries` times. Returns (raw, [(where, error)]).
        """
        s, i = self.locate(position)
        source, failures = self.sources[s], []
        n = len(source)
        for attempt in range(min(self.max_retries, n - 1) + 1):
            j = (i + attempt) % n
            try:
                raw = source[j]
            except DataError as e:
                raw, why = None, str(e)
            else:
                why = "the source returned no sample"
            if raw is not None:
                return raw, failures
            where = source.where(j) if hasattr(source, "where") else f"source {s}"
            failures.append((where, why))
        raise DataError(f"{len(failures)} consecutive samples of data.sources[{s}] are unreadable, the last in "
                        f"{failures[-1][0]}: {failures[-1][1]}")

    def __getitem__(self, position: int) -> Dict[str, Any]:
        if position < 0:
            raise IndexError(f"positions are >= 0, got {position}")
        raw, failures = self.read(position)
        s, i = self.locate(position)
        views, geometry, masks = {}, {}, {}
        for name, steps in self.views.items():
            field = view_field(steps)
            if raw.get(field) is None:
                raise DataError(f"sample '{raw.get('key')}' has no {field}, but view '{name}' reads one; "
                                f"give {field}-less sources no {field} views")
            view = apply_view(steps, raw[field], generator(self.seed, position, name))
            if isinstance(view, View):
                views[name], geometry[name] = view.image, view.geometry()
            else:  # audio: features (T, n_mels), no crop geometry
                views[name] = view.tensor()
            if view.mask is not None:
                masks[name] = view.mask
        label = raw.get("label")
        present = {field: raw.get(k) is not None for k, field in PRESENT_FIELDS.items()}
        present["text"] = present["text"] and self.tokenizer is not None
        item = {"views": views, "geometry": geometry, "masks": masks,
                "label": -1 if label is None else int(label), "index": int(position),
                "key": str(raw.get("key", f"{s}/{i}")), "seg": raw.get("seg"), "present": present,
                "skipped": [where for where, _ in failures]}
        if raw.get("tokens") is not None:  # a text source hands token ids directly (token_shards)
            item["text"] = raw["tokens"]
            item["present"]["text"] = True
        elif self.tokenizer is not None:
            item["text"] = encode_text(raw.get("caption"), self.tokenizer, self.text_length)
        # extra per-sample fields (segment ids, sentence-order labels, ...): batch[name] + present[name]
        item["fields"] = dict(raw.get("fields") or {})
        return item


def collate(items: List[Dict[str, Any]]) -> Dict[str, Any]:
    """Stack per-sample dicts into the batch dict."""
    first = items[0]
    batch: Dict[str, Any] = {
        "views": {n: torch.stack([it["views"][n] for it in items]) for n in first["views"]},
        "geometry": {n: torch.stack([it["geometry"][n] for it in items]) for n in first["geometry"]},
        "masks": {n: torch.stack([it["masks"][n] for it in items]) for n in first["masks"]},
        "label": torch.tensor([it["label"] for it in items], dtype=torch.long),
        "present": {k: torch.tensor([it["present"][k] for it in items], dtype=torch.bool)
                    for k in first["present"]},
        "index": torch.tensor([it["index"] for it in items], dtype=torch.long),
        "key": [it["key"] for it in items],
        # unreadable samples replaced while building this batch, and where each one lives (a shard path)
        "skipped": torch.tensor(sum(len(it.get("skipped", ())) for it in items), dtype=torch.long),
        "skipped_from": [w for it in items for w in it.get("skipped", ())],
    }
    for n, m in batch["masks"].items():  # visible tokens per row, counted on the host (the model reads it
        keep = (~m.reshape(m.shape[0], -1)).sum(1)  # instead of the device), when every row has as many
        if len(keep) and bool((keep == keep[0]).all()):
            batch.setdefault("mask_keep", {})[n] = int(keep[0])
    if "text" in first:
        batch["text"] = torch.stack([it["text"] for it in items])
    names = sorted({n for it in items for n in it.get("fields", {})})
    for name in names:
        vals = [it.get("fields", {}).get(name) for it in items]
        like = torch.as_tensor(next(v for v in vals if v is not None))
        batch[name] = torch.stack([torch.zeros_like(like) if v is None else torch.as_tensor(v) for v in vals])
        batch["present"][name] = torch.tensor([v is not None for v in vals], dtype=torch.bool)
    segs = [it.get("seg") for it in items]
    if all(s is not None for s in segs) and len({tuple(s.shape) for s in segs}) == 1:
        batch["seg"] = torch.stack(segs)  # source coordinates; map through batch["geometry"]
    return batch
