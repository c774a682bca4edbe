"""The data an evaluation reads: the recipe's own source at a split (the default), or a user's data given as
one string (`--train-data` / `--val-data` at the entry points):

- a shard pattern, glob or `.tar` file: `data/x/{000..009}.tar`           -> webdataset_shards
- a folder of `.tar` shards, or the manifest.json `preprocess.py images` writes -> webdataset_shards
- an ImageNet-style folder `root/<class>/*.jpg`                              -> image_folder
- a JSON source object: `{"type": "image_folder", "root": "..."}`           -> that source

Class names (for zero-shot prompts) come from the source's `classes`, else from the shards' manifest.json.
"""
import glob
import inspect
import json
import os
from typing import Any, List, Optional

from ..errors import ConfigError
from ..registry import DATASETS, build, config_path
from ..data.sources.image_folder import IMAGE_SUFFIXES, class_folders


def _has_images(folder: str) -> bool:
    for _, _, files in os.walk(folder, followlinks=True):
        if any(f.lower().endswith(IMAGE_SUFFIXES) for f in files):
            return True
    return False


def source_config(spec: str, *, flag: str = "--data") -> dict:
    """The source object (without a weight) a data string names; ConfigError when it names nothing usable."""
    if not isinstance(spec, str) or not spec.strip():
        raise ConfigError(f"{flag}: expected a shard pattern, a shard folder or manifest, an image folder "
                          f"or a JSON source object")
    text = spec.strip()
    if text.startswith("{"):
        try:
            cfg = json.loads(text)
        except ValueError as e:
            raise ConfigError(f"{flag}: invalid JSON source object ({e})") from None
        if not isinstance(cfg, dict) or "type" not in cfg:
            raise ConfigError(f"{flag}: a JSON source needs a 'type', e.g. "
                              f"{{\"type\": \"image_folder\", \"root\": \"data/train\"}}")
        return {k: v for k, v in cfg.items() if k != "weight"}
    if os.path.isdir(text):
        if glob.glob(os.path.join(text, "*.tar")) or os.path.isfile(os.path.join(text, "manifest.json")):
            manifest = os.path.join(text, "manifest.json")
            return {"type": "webdataset_shards", "shards": manifest if os.path.isfile(manifest) else text}
        classes = class_folders(text)
        if classes and any(_has_images(os.path.join(text, c)) for c in classes):
            return {"type": "image_folder", "root": text}
        raise ConfigError(f"{flag} '{text}': the folder holds neither .tar shards nor class sub-folders with "
                          f"images (expected {text}/<class>/<image>)")
    if text.endswith(".json") and os.path.isfile(text):
        return {"type": "webdataset_shards", "shards": text}
    if "{" in text or glob.has_magic(text) or text.endswith(".tar") or "::" in text:
        return {"type": "webdataset_shards", "shards": text}
    raise ConfigError(f"{flag} '{text}': no such file or folder (give a shard pattern like "
                      f"'data/x/{{000..009}}.tar', a shard folder or manifest.json, or an image folder)")


def build_data_source(spec: str, *, flag: str = "--data") -> Any:
    """Build the source a data string names; errors name the flag."""
    cfg = source_config(spec, flag=flag)
    with config_path(flag, absolute=True):
        source = build(DATASETS, cfg)
    if len(source) < 1:
        raise ConfigError(f"{flag} '{spec}': the source is empty")
    return source


def split_source_config(cfg: dict, split: str, *, num_samples: Optional[int] = None, source: int = 0) -> dict:
    """The source object (without a weight) of the recipe's data source `source` at `split` (and num_samples
    where the source generates samples; None keeps the recipe's), every label and caption kept."""
    sources = (cfg.get("data") or {}).get("sources") or []
    path = f"data.sources[{source}]"
    if not 0 <= source < len(sources) or not isinstance(sources[source], dict):
        raise ConfigError(f"the recipe has no data source {source} to evaluate on ({len(sources)} sources)",
                          path="data.sources")
    scfg = {k: v for k, v in sources[source].items() if k != "weight"}
    with config_path(path, absolute=True):
        params = inspect.signature(DATASETS.get(scfg.get("type")).__init__).parameters
    if "split" not in params:
        raise ConfigError(f"source '{scfg['type']}' takes no 'split': evaluation needs a train and a "
                          f"held-out split; pass --train-data and --val-data", path=path)
    scfg["split"] = split
    if num_samples is not None and "num_samples" in params:
        scfg["num_samples"] = max(int(num_samples), 1)
    # labels withheld from pre-training are still the probe's labels: every recipe is probed on the same
    # samples whatever its label/caption fraction
    for frac in ("label_fraction", "caption_fraction"):
        if frac in params:
            scfg[frac] = 1.0
    return scfg


def build_split_source(cfg: dict, split: str, *, num_samples: Optional[int] = None, source: int = 0) -> Any:
    """The recipe's data source `source` with `split` (split_source_config), built."""
    scfg = split_source_config(cfg, split, num_samples=num_samples, source=source)
    with config_path(f"data.sources[{source}]", absolute=True):
        return build(DATASETS, scfg)


def class_names(source: Any, spec: Optional[str] = None) -> Optional[List[str]]:
    """The class names of a source, by label index: its `classes`, else the `classes` of the manifest.json
    given as `spec` or beside its shards (`preprocess.py images --folder` writes them); None when unknown."""
    names = getattr(source, "classes", None)
    if names:
        return [str(n) for n in names]
    candidates = []
    if isinstance(spec, str) and spec.strip().endswith(".json"):
        candidates.append(spec.strip())
    for p in getattr(source, "paths", None) or []:
        candidates.append(os.path.join(os.path.dirname(p), "manifest.json"))
    for m in dict.fromkeys(candidates):
        try:
            with open(m, encoding="utf-8") as f:
                names = json.load(f).get("classes")
        except (OSError, ValueError, AttributeError):
            continue
        if isinstance(names, list) and names:
            return [str(n) for n in names]
    return None
