"""Tokenizers: one file each, registered in TOKENIZERS; built from a config or reloaded from a directory."""
from .base import META_FILE, Tokenizer
from .load import build_tokenizer, tokenizer_from_dir, tokenizer_from_path
from .char import CharTokenizer
from .spm import SentencePieceTokenizer, train_sentencepiece
from .wordpiece import WordPieceTokenizer

__all__ = ["META_FILE", "Tokenizer", "build_tokenizer", "tokenizer_from_dir", "tokenizer_from_path",
           "CharTokenizer", "SentencePieceTokenizer", "train_sentencepiece", "WordPieceTokenizer"]
