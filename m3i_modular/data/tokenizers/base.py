"""The interface every tokenizer implements, and loading one from a config or a saved directory.

`encode` returns the bare ids of the text (no BOS/EOS/CLS/SEP): the dataset or the model adds special
ids where its objective wants them, from `bos_id` / `eos_id` / `mask_id` / `pad_id`.
A tokenizer saves itself as its files plus `m3i_tokenizer.json`, the registry config with file arguments
written relative to the directory, so `tokenizer_from_dir` rebuilds it through the same validated path.
"""
from __future__ import annotations

import json
import os
from typing import Any, Dict, List, Optional, Sequence

from ...errors import ConfigError, DataError
from ...registry import TOKENIZERS, build, config_path
from ..atomic import atomic_write_text

META_FILE = "m3i_tokenizer.json"


class Tokenizer:
    """Base class. Subclasses set the special ids (None where absent) and `file_args`."""

    file_args: Sequence[str] = ()  # constructor arguments that name files (saved relative to the dir)

    pad_id: Optional[int] = None
    bos_id: Optional[int] = None
    eos_id: Optional[int] = None
    mask_id: Optional[int] = None
    unk_id: Optional[int] = None

    @property
    def vocab_size(self) -> int:
        raise NotImplementedError

    def encode(self, text: str) -> List[int]:
        raise NotImplementedError

    def decode(self, ids: Sequence[int], *, skip_special: bool = True) -> str:
        raise NotImplementedError

    def id_to_token(self, i: int) -> str:
        raise NotImplementedError

    def token_to_id(self, token: str) -> Optional[int]:
        raise NotImplementedError

    @property
    def special_ids(self) -> List[int]:
        return sorted({i for i in (self.pad_id, self.bos_id, self.eos_id, self.mask_id, self.unk_id)
                       if i is not None})

    def config(self) -> Dict[str, Any]:
        """The registry config that rebuilds this tokenizer (file arguments as given)."""
        raise NotImplementedError

    def _save_files(self, directory: str) -> Dict[str, str]:
        """Write the tokenizer's own files; return {file_arg: file name relative to directory}."""
        raise NotImplementedError

    def save(self, directory: str) -> List[str]:
        """Write the files that rebuild this tokenizer into `directory`; return their names."""
        os.makedirs(directory, exist_ok=True)
        files = self._save_files(directory)
        meta = dict(self.config(), **files)
        atomic_write_text(os.path.join(directory, META_FILE), json.dumps(meta, indent=2) + "\n")
        return sorted(set(files.values())) + [META_FILE]


def build_tokenizer(cfg: Dict[str, Any], *, key: str = "tokenizer") -> Tokenizer:
    """Build a registered tokenizer from {"type": ..., **kwargs}."""
    _register_builtins()
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
    _register_builtins()
    try:
        cls = TOKENIZERS.get(cfg["type"])
    except ConfigError as e:
        raise DataError(f"{meta_path}: {e.message}") from None
    for arg in getattr(cls, "file_args", ()):
        if isinstance(cfg.get(arg), str):
            cfg[arg] = os.path.join(directory, cfg[arg])
    return build(TOKENIZERS, cfg, key="tokenizer")


def _register_builtins() -> None:
    # Importing the package registers the built-in tokenizers; done lazily to avoid an import cycle.
    from . import char, spm, wordpiece  # noqa: F401


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
