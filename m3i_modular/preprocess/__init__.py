"""Offline writers behind `preprocess.py`: images, audio, text and tokenizers -> shards and tokenizer files.
Training never imports this package; it reads what these write through m3i_modular.data.sources."""
