"""Loading a tokenizer from a config, a saved directory, or a file named on a command line."""
from __future__ import annotations

import json
import os
from typing import Any, Dict

from ...errors import ConfigError, DataError
from ...registry import TOKENIZERS, build, config_path
from . import char, spm, wordpiece  # noqa: F401  (registers the built-in tokenizers)
from .base import META_FILE, Tokenizer


def build_tokenizer(cfg: Dict[str, Any], *, key: str = "tokenizer") -> Tokenizer:
    """Build a registered tokenizer from {"type": ..., **kwargs}."""
    return build(TOKENIZERS, cfg, key=key)


def tokenizer_from_dir(directory: str) -> Tokenizer:
    """Reload a tokenizer written by `Tokenizer.save`."""
    meta_path = os.path.join(directory, META_FILE)
    if not os.path.isfile(meta_path):
        raise DataError(f"{directory}: no {META_FILE} here; expected a directory written by Tokenizer.save")
    try:
        with open(meta_path, encoding="utf-8") as f:
            cfg = json.load(f)
    except (OSError, ValueError) as e:
        raise DataError(f"{meta_path}: unreadable tokenizer description ({e})") from None
    if not isinstance(cfg, dict) or "type" not in cfg:
        raise DataError(f"{meta_path}: expected an object with a 'type'")
    try:
        cls = TOKENIZERS.get(cfg["type"])
    except ConfigError as e:
        raise DataError(f"{meta_path}: {e.message}") from None
    for arg in getattr(cls, "file_args", ()):
        if isinstance(cfg.get(arg), str):
            cfg[arg] = os.path.join(directory, cfg[arg])
    return build(TOKENIZERS, cfg, key="tokenizer")


def tokenizer_from_path(path: str) -> Tokenizer:
    """Load a tokenizer from what a user names on a command line.

    A directory written by `save`, a sentencepiece `.model`, a BERT `vocab.txt`, or a JSON config
    {"type": ..., ...} whose file arguments are relative to the working directory.
    """
    if os.path.isdir(path):
        return tokenizer_from_dir(path)
    if not os.path.isfile(path):
        raise DataError(f"{path}: tokenizer not found (give a saved tokenizer directory, a sentencepiece "
                        f".model, a BERT vocab.txt or a JSON tokenizer config)")
    if path.endswith(".model"):
        return build_tokenizer({"type": "sentencepiece", "model": path})
    if path.endswith(".txt"):
        return build_tokenizer({"type": "wordpiece", "vocab": path})
    if path.endswith(".json"):
        try:
            with open(path, encoding="utf-8") as f:
                cfg = json.load(f)
        except ValueError as e:
            raise DataError(f"{path}: invalid JSON ({e})") from None
        key = ""
        if isinstance(cfg, dict) and "tokenizer" in cfg and "type" not in cfg:  # a section of a recipe
            cfg, key = cfg["tokenizer"], "tokenizer"
        with config_path("", file=path, absolute=True):
            return build_tokenizer(cfg, key=key)
    raise DataError(f"{path}: unknown tokenizer file type (expected a directory, .model, .txt or .json)")
