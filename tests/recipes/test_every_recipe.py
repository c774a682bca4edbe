"""Every recipe in models/, found by glob: a recipe dropped into models/ is tested with no edit here.

- A CPU recipe (a name without `_base`) trains 2 steps through the real CLI at tiny size (widths <= 64, images
  <= 32 px, batch <= 8, no loader workers, fp32) and writes 2 finite losses and a checkpoint.
- A `*_base.json` (paper scale) builds on the meta device with a positive parameter count, equal to the
  paper's where PAPER_COUNTS has it (the other base recipes are checked in detail in
  tests/test_contrastive_base_recipes.py, tests/models/ and tests/recipes/test_m3i_vit_recipe.py).

The shrinking is generic (widths, batch, train settings) plus one rule per input family, recognised from the
recipe's embedding. A recipe of a family with no rule fails with a message saying where to add one; a rule that
leaves a recipe above the tiny limits fails too, so nothing large is ever trained here by accident.
"""
import glob
import json
import math
import os
import sys

import pytest

from cli_utils import REPO, read_metrics, run_cli

sys.path.insert(0, os.path.dirname(__file__))
from textlm_helpers import make_corpus  # noqa: E402

RECIPES = sorted(glob.glob(os.path.join(REPO, "models", "*.json")))
MAX_DIM, MAX_PX, MAX_BATCH, MAX_TOKENS = 64, 32, 8, 64
WIDTH_KEYS = ("dim", "hidden", "projector_hidden", "predictor_hidden", "neck_dim", "channels")
TRAIN = {"total_steps": 2, "batch_size": MAX_BATCH, "num_workers": 0, "precision": "fp32", "progress": False,
         "log_every": 1, "save_every": 2, "keep_last": 1}

# Paper parameter counts (within 1%) per component of the parameter table. ViT-B/16: 86.6M with a 1000-class
# head (timm vit_base_patch16_224: 86,567,656); MAE's ViT-B encoder is the same without the head, and its 8x512
# decoder adds ~26M. SimMIM / data2vec add a 768 -> 768 linear head (0.59M); data2vec's and SiameseIM's EMA
# copies equal the online tower (85.65M: 85.06M blocks + 0.59M patch projection); SiameseIM's 8 x 512
# predictor is 26.5M.
PAPER_COUNTS = {
    "supervised_vit_base": {"total": 86.6e6},
    "mae_vit_base": {"encoder": 85.1e6, "objectives.mae": 26.3e6},
    "simmim_vit_base": {"encoder": 85.06e6, "embedding": 0.591e6, "objectives.simmim": 0.591e6},
    "data2vec_vit_base": {"encoder": 85.06e6, "shared.ema": 85.65e6, "objectives.data2vec": 0.591e6},
    "siameseim_vit_base": {"encoder": 85.06e6, "shared.ema": 85.65e6, "objectives.siameseim": 26.5e6},
}


def _name(path):
    return os.path.splitext(os.path.basename(path))[0]


def _nodes(x, path=""):
    """(dotted path, dict) for every object in x, lists included (their indices are path parts)."""
    if isinstance(x, dict):
        yield path, x
        items = x.items()
    elif isinstance(x, list):
        items = enumerate(x)
    else:
        return
    for k, v in items:
        yield from _nodes(v, f"{path}.{k}" if path else str(k))


def _key(path, k):
    return f"{path}.{k}" if path else k


IMAGE_KEYS = ("image_size", "size")


def _image_nodes(cfg):
    """Where image sizes live: the embedding, the data sources and the views' transforms."""
    yield from _nodes(cfg["model"]["embedding"], "model.embedding")
    yield from _nodes(cfg["data"], "data")
    yield from _nodes(cfg.get("views", {}), "views")


# ---- shrinking: generic rules, then one per input family ------------------------------------------------------

def _shrink_widths(cfg):
    """Every width in the model and its shared parts clamped to MAX_DIM (equal widths stay equal), heads to a
    divisor of the new width."""
    sets = {}
    for section in ("model", "shared"):
        for path, node in _nodes(cfg.get(section, {}), section):
            for k in WIDTH_KEYS:
                v = node.get(k)
                if isinstance(v, int) and not isinstance(v, bool) and v > MAX_DIM:
                    sets[_key(path, k)] = MAX_DIM
            dim, heads = node.get("dim"), node.get("heads")
            if isinstance(dim, int) and isinstance(heads, int) and min(dim, MAX_DIM) % heads:
                sets[_key(path, "heads")] = max(h for h in range(1, heads + 1) if min(dim, MAX_DIM) % h == 0)
    return sets


def _shrink_data(cfg):
    sets = {f"train.{k}": v for k, v in TRAIN.items()}
    for i, src in enumerate(cfg["data"]["sources"]):
        if isinstance(src.get("num_samples"), int):
            sets[f"data.sources.{i}.num_samples"] = min(src["num_samples"], 64)
    return sets


def _images(cfg, ctx):
    """Image recipes: every image size (embedding, sources, view crops) at most MAX_PX."""
    sets = {}
    for path, node in _image_nodes(cfg):
        for k in IMAGE_KEYS:
            v = node.get(k)
            if isinstance(v, int) and not isinstance(v, bool) and v > MAX_PX:
                sets[_key(path, k)] = MAX_PX
    return sets


def _audio(cfg, ctx):
    """Speech recipes: synthetic clips are already short (the widths rule does the rest)."""
    return {}


def _text(cfg, ctx):
    """Text recipes: token shards of a tiny synthetic corpus (built once), its vocabulary, sequences of at most
    MAX_TOKENS tokens."""
    corpus = ctx["corpus"]()
    emb = cfg["model"]["embedding"]
    vocab = emb["word"]["vocab_size"]
    sets = {"tokenizer": {"type": "wordpiece", "vocab": corpus["vocab"]}}
    for path, node in _nodes(cfg["model"], "model"):
        if node.get("vocab_size") == vocab:
            sets[_key(path, "vocab_size")] = corpus["vocab_size"]
        if isinstance(node.get("max_length"), int) and node["max_length"] > MAX_TOKENS:
            sets[_key(path, "max_length")] = MAX_TOKENS
    for i, src in enumerate(cfg["data"]["sources"]):
        if src["type"] != "token_shards":
            pytest.fail(f"{cfg['_file']}: a text recipe whose source is {src['type']!r}: add its tiny data to _text")
        sets[f"data.sources.{i}.path"] = corpus[f"train_{'bert' if src['mode'] == 'bert' else 'lm'}"]
        sets[f"data.sources.{i}.seq_length"] = min(src["seq_length"], MAX_TOKENS)
    return sets


FAMILIES = {"patch": _images, "intern_image_stem": _images, "speech": _audio, "text": _text}


def _family(cfg):
    emb = cfg["model"]["embedding"]
    if "type" in emb:
        return emb["type"]
    parts = sorted(p.get("type", "?") for p in emb.values() if isinstance(p, dict))
    return "text" if "word" in parts else "+".join(parts)


def tiny_overrides(path, ctx):
    """--set assignments that shrink the recipe at `path` to tiny size."""
    from m3i_modular.recipe.config import load_config
    cfg = load_config(path)
    family = _family(cfg)
    if family not in FAMILIES:
        pytest.fail(f"{path}: no tiny-size rule for embedding family {family!r}; add one to FAMILIES in "
                    f"{__file__}", pytrace=False)
    sets = {**_shrink_widths(cfg), **_shrink_data(cfg), **FAMILIES[family](cfg, ctx)}
    return [f"{k}={json.dumps(v)}" for k, v in sets.items()]


def _assert_tiny(cfg):
    limits = [(_nodes(cfg["model"], "model"), WIDTH_KEYS, MAX_DIM),
              (_nodes(cfg.get("shared", {}), "shared"), WIDTH_KEYS, MAX_DIM),
              (_image_nodes(cfg), IMAGE_KEYS, MAX_PX),
              (_nodes(cfg, ""), ("seq_length", "max_length"), MAX_TOKENS)]
    too_big = [f"{_key(path, k)}={node[k]} (> {limit})" for nodes, keys, limit in limits for path, node in nodes
               for k in keys if isinstance(node.get(k), int) and not isinstance(node[k], bool) and node[k] > limit]
    train = cfg["train"]
    assert train["batch_size"] <= MAX_BATCH and train["num_workers"] == 0 and train["precision"] == "fp32"
    assert not too_big, f"{cfg['_file']}: the tiny-size rules left {too_big}; extend them above"


# ---- the test -------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def corpus_maker(tmp_path_factory):
    cache = {}

    def make():
        if "corpus" not in cache:
            cache["corpus"] = make_corpus(str(tmp_path_factory.mktemp("corpus")), train_docs=60, heldout_docs=2)
        return cache["corpus"]
    return make


def _train_tiny(path, out, ctx):
    from m3i_modular.recipe.config import load_config
    sets = tiny_overrides(path, ctx)
    cfg = load_config(path, overrides=sets)
    _assert_tiny(cfg)
    args = ["--config", os.path.relpath(path, REPO), "--output-dir", str(out)]
    for s in sets:
        args += ["--set", s]
    run_cli("pretrain.py", *args, timeout=300, check=True)
    rows = read_metrics(out)
    assert [r["step"] for r in rows] == [1, 2], rows
    for r in rows:
        assert math.isfinite(r["loss"]), r
        for obj, spec in cfg["model"]["objectives"].items():
            if spec.get("weight", 1.0) == 0:
                continue
            assert math.isfinite(r[f"{obj}_loss"]), (obj, r)
            if f"{obj}_count" in r:
                assert r[f"{obj}_count"] > 0, (obj, r)
    ckpts = out / "checkpoints"
    latest = (ckpts / "latest").read_text().strip()
    assert (ckpts / latest).is_dir() and any((ckpts / latest).iterdir()), latest


def _build_on_meta(path):
    from m3i_modular.recipe.config import load_config
    from m3i_modular.run import build_run, parameter_table
    cfg = load_config(path)
    cfg.pop("tokenizer", None)  # the tokenizer is the user's data (a vocabulary file), not part of the model
    run = build_run(cfg, with_data=False, device="meta")
    params = list(run.model.parameters())
    assert params and all(p.is_meta for p in params)
    table = parameter_table(run.model)
    assert table["total"] == sum(p.numel() for p in params) > 0
    assert set(PAPER_COUNTS) <= {_name(p) for p in RECIPES}, "PAPER_COUNTS names a recipe that is gone"
    for key, want in PAPER_COUNTS.get(_name(path), {}).items():
        assert abs(table[key] - want) / want < 0.01, (key, table[key], want)


@pytest.mark.timeout(300)
@pytest.mark.parametrize("path", RECIPES, ids=_name)
def test_recipe(path, tmp_path, corpus_maker):
    if _name(path).endswith("_base"):
        _build_on_meta(path)
    else:
        _train_tiny(path, tmp_path / "run", {"corpus": corpus_maker})

