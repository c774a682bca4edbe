"""The interface every tokenizer implements (loading one from a config or a directory: load.py).

`encode` returns the bare ids of the text (no BOS/EOS/CLS/SEP): the dataset or the model adds special
ids where its objective wants them, from `bos_id` / `eos_id` / `mask_id` / `pad_id`.
A tokenizer saves itself as its files plus `m3i_tokenizer.json`, the registry config with file arguments
written relative to the directory, so `tokenizer_from_dir` rebuilds it through the same validated path.
"""
from __future__ import annotations

import json
import os
from typing import Any, Dict, List, Optional, Sequence

from ...runtime.atomic import atomic_write_text

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
