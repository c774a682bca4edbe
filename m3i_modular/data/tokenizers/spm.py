"""SentencePiece tokenizer (unigram / BPE models) and a trainer that writes its files atomically."""
from __future__ import annotations

import os
import shutil
import tempfile
from typing import Any, Dict, List, Optional, Sequence

from ...errors import DataError
from ...registry import TOKENIZERS, config_error
from ...runtime.atomic import atomic_write_bytes
from .base import Tokenizer

MASK_PIECES = ("<mask>", "[MASK]")  # the mask symbol, if the model was trained with one


@TOKENIZERS.register("sentencepiece")
class SentencePieceTokenizer(Tokenizer):
    file_args = ("model",)

    def __init__(self, *, model: str):
        import sentencepiece

        if not os.path.isfile(model):
            raise config_error(f"sentencepiece model file '{model}' not found; "
                               f"train one with `preprocess.py tokenizer`", "model")
        self.model = model
        self._sp = sentencepiece.SentencePieceProcessor()
        try:
            with open(model, "rb") as f:
                self._proto = f.read()
            self._sp.LoadFromSerializedProto(self._proto)
        except (OSError, RuntimeError) as e:
            raise DataError(f"{model}: not a sentencepiece model ({e})") from None

        def opt(i: int) -> Optional[int]:
            return i if i >= 0 else None

        self.pad_id, self.bos_id = opt(self._sp.pad_id()), opt(self._sp.bos_id())
        self.eos_id, self.unk_id = opt(self._sp.eos_id()), opt(self._sp.unk_id())
        self.mask_id = next((self._sp.piece_to_id(p) for p in MASK_PIECES
                             if self._sp.piece_to_id(p) != self._sp.unk_id()), None)

    @property
    def vocab_size(self) -> int:
        return self._sp.get_piece_size()

    def encode(self, text: str) -> List[int]:
        return self._sp.encode(text, out_type=int)

    def decode(self, ids: Sequence[int], *, skip_special: bool = True) -> str:
        ids = [int(i) for i in ids]
        if skip_special and self.mask_id is not None:  # sentencepiece itself drops only control ids
            ids = [i for i in ids if i != self.mask_id]
        return self._sp.decode(ids)

    def id_to_token(self, i: int) -> str:
        return self._sp.id_to_piece(int(i))

    def token_to_id(self, token: str) -> Optional[int]:
        i = self._sp.piece_to_id(token)
        return i if self._sp.id_to_piece(i) == token else None  # unknown pieces map to unk

    def config(self) -> Dict[str, Any]:
        return {"type": "sentencepiece", "model": self.model}

    def _save_files(self, directory: str) -> Dict[str, str]:
        atomic_write_bytes(os.path.join(directory, "spm.model"), self._proto)
        return {"model": "spm.model"}


def train_sentencepiece(files: Sequence[str], model_prefix: str, vocab_size: int, model_type: str = "unigram",
                        *, character_coverage: float = 1.0, mask_piece: Optional[str] = "<mask>",
                        user_symbols: Sequence[str] = (), input_sentence_size: int = 0,
                        hard_vocab_limit: bool = True, num_threads: int = 1,
                        extra: Optional[Dict[str, Any]] = None) -> List[str]:
    """Train a model on text files; write `<prefix>.model` and `<prefix>.vocab`; return their paths.

    Special ids follow BERT/GPT habits: pad 0, unk 1, bos 2, eos 3, then the mask piece. Training runs in
    a temporary directory so an interrupted run leaves neither file behind.
    """
    import sentencepiece

    if not files:
        raise DataError("no input files given to train a sentencepiece model")
    for path in files:
        if not os.path.isfile(path):
            raise DataError(f"{path}: input file not found")
    if model_type not in ("unigram", "bpe", "char", "word"):
        raise DataError(f"unknown sentencepiece model type '{model_type}' (valid: bpe, char, unigram, word)")
    symbols = ([mask_piece] if mask_piece else []) + list(user_symbols)
    out_dir = os.path.dirname(os.path.abspath(model_prefix))
    os.makedirs(out_dir, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".spm-train.", dir=out_dir)
    try:
        tmp_prefix = os.path.join(tmp, "m")
        kwargs = dict(input=",".join(files), model_prefix=tmp_prefix, vocab_size=int(vocab_size),
                      model_type=model_type, character_coverage=character_coverage,
                      pad_id=0, unk_id=1, bos_id=2, eos_id=3, user_defined_symbols=symbols,
                      hard_vocab_limit=hard_vocab_limit, num_threads=num_threads, minloglevel=2)
        if input_sentence_size:
            kwargs.update(input_sentence_size=input_sentence_size, shuffle_input_sentence=True)
        kwargs.update(extra or {})
        try:
            sentencepiece.SentencePieceTrainer.train(**kwargs)
        except RuntimeError as e:
            # sentencepiece's message is long and multi-line; its last line says what to change
            msg = str(e).strip().splitlines()[-1]
            raise DataError(f"sentencepiece training failed: {msg}") from None
        outputs = []
        for ext in (".model", ".vocab"):
            os.replace(tmp_prefix + ext, model_prefix + ext)
            outputs.append(model_prefix + ext)
        return outputs
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
