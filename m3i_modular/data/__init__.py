"""Data: tokenizers, shard writers and readers, transforms, datasets."""
