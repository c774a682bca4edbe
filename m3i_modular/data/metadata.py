"""What the data records about itself, checked against the run before a step is taken (run.py calls
`check_text_data` once the model, the tokenizer and the data are built):

- token shards (`preprocess.py text`) record the tokenizer they were written with: the run's own tokenizer
  (the recipe's "tokenizer", which the run saves for fine-tuning and inference) must be that one, by
  fingerprint (data/tokenizers/fingerprint.py), else ids would be read with another vocabulary;
- the ids the data can hold (the shards' vocab_size; the run tokenizer's, for captions) must fit every word
  embedding and mlm_mask of the model, else the first batch ends in an IndexError.

Each mismatch is one ConfigError line naming both sides.
"""
from __future__ import annotations

import os
from typing import Any, List, Optional, Tuple

from ..registry import EMBEDDINGS, config_error
from .tokenizers.fingerprint import describe, fingerprint


ID_TAKERS = ("word", "mlm_mask")  # the components whose vocab_size bounds the token ids they take or draw


def recipe_vocab_limits(cfg: Any, path: str = "model") -> List[Tuple[str, int]]:
    """(recipe path, value) of the vocab_size of every word embedding and mlm_mask the model section declares."""
    out: List[Tuple[str, int]] = []
    if isinstance(cfg, dict):
        v = cfg.get("vocab_size")
        if cfg.get("type") in ID_TAKERS and isinstance(v, int) and not isinstance(v, bool):
            out.append((f"{path}.vocab_size", v))
        for k, v in cfg.items():
            out += recipe_vocab_limits(v, f"{path}.{k}")
    elif isinstance(cfg, list):
        for i, v in enumerate(cfg):
            out += recipe_vocab_limits(v, f"{path}[{i}]")
    return out


def model_vocab_limits(model: Any) -> List[Tuple[str, int]]:
    """(module name, vocab size) of every word embedding of a built model (for models no recipe describes)."""
    word = EMBEDDINGS.get("word")
    return [(f"the word embedding '{name}'", int(m.weight.shape[0])) for name, m in model.named_modules()
            if isinstance(m, word)]


def _smallest(model: Any, model_cfg: Any) -> Optional[Tuple[str, int]]:
    limits = recipe_vocab_limits(model_cfg) or model_vocab_limits(model)
    return min(limits, key=lambda x: x[1]) if limits else None


def _shards_of(source: Any):
    from .sources.token_store import TokenShards
    shards = getattr(source, "shards", None)
    return shards if isinstance(shards, TokenShards) else None


def check_text_data(model: Any, dataset: Any, tokenizer: Any = None, model_cfg: Any = None) -> None:
    """A ConfigError when a token-shard source was written with another tokenizer than the run's, or the data's
    ids do not fit the model's vocabulary (see the module's docstring)."""
    smallest = _smallest(model, model_cfg)
    for i, source in enumerate(getattr(dataset, "sources", ())):
        shards = _shards_of(source)
        if shards is None:
            continue
        header_file = shards.shards[0].base + ".json"
        where = f"data.sources[{i}]"
        theirs = None
        if tokenizer is not None:
            theirs = shards.tokenizer()
            recorded = shards.header.get("tokenizer_fingerprint") or fingerprint(theirs)
            ours = fingerprint(tokenizer)
            if recorded and ours and recorded != ours:
                raise config_error(
                    f"the token shards in {shards.root} were written with another tokenizer "
                    f"({describe(theirs)}, saved in {os.path.join(shards.root, 'tokenizer')}) than the run's "
                    f"\"tokenizer\" ({describe(tokenizer)}{_files(tokenizer)}): set tokenizer to the shards' one, "
                    f"or rewrite the shards with `preprocess.py text --tokenizer` this one", where)
        size = shards.header.get("vocab_size")
        if size is None:
            theirs = theirs or shards.tokenizer()
            size = theirs.vocab_size
        if smallest is not None and smallest[1] < int(size):
            raise config_error(
                f"{smallest[0]} is {smallest[1]}, smaller than the vocab_size {int(size)} the token "
                f"shards record in {header_file} (ids up to {int(size) - 1} would not fit): set it to "
                f"{int(size)}", where)
    if tokenizer is not None and smallest is not None and smallest[1] < int(tokenizer.vocab_size):
        raise config_error(f"{smallest[0]} is {smallest[1]}, smaller than the {tokenizer.vocab_size} "
                          f"tokens of the run's tokenizer ({describe(tokenizer)}{_files(tokenizer)}): set it to "
                          f"{tokenizer.vocab_size}, or use a tokenizer of that many tokens", "tokenizer")


def _files(tokenizer: Any) -> str:
    try:
        cfg = tokenizer.config()
    except (NotImplementedError, AttributeError):
        return ""
    files = [str(cfg[a]) for a in getattr(tokenizer, "file_args", ()) if isinstance(cfg.get(a), str)]
    return f", from {', '.join(files)}" if files else ""
