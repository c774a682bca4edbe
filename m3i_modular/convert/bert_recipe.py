"""A BERT recipe (the "model" section and the rest) from architecture sizes, shared by the converters."""
from typing import Any, Dict, List, Optional


def bert_model_config(*, vocab_size: int, dim: int, layers: int, heads: int, ffn: int, max_length: int,
                      type_vocab: int = 2, eps: float = 1e-12, dropout: float = 0.1, mask_id: int = 103,
                      special_ids: Optional[List[int]] = None, sop: bool = True) -> Dict[str, Any]:
    model: Dict[str, Any] = {
        "embedding": {
            "word": {"type": "word", "vocab_size": vocab_size, "dim": dim, "pad_id": 0},
            "position": {"type": "position", "max_length": max_length, "dim": dim},
            "segment": {"type": "segment", "num_segments": type_vocab, "dim": dim},
            "norm": {"type": "layer_norm", "dim": dim, "eps": eps, "dropout": dropout},
        },
        "encoder": {"type": "transformer", "layers": layers, "heads": heads, "dim": dim,
                    "mlp_ratio": ffn / dim, "norm": "post", "eps": eps, "dropout": dropout},
        "batch_transforms": [{"type": "mlm_mask", "mask_id": mask_id, "vocab_size": vocab_size,
                              "special_ids": special_ids if special_ids is not None else [0, 100, 101, 102, 103]}],
        "objectives": {
            "mlm": {"input": "mlm_input", "target_view": "text",
                    "target_embedding": {"type": "tied_word", "word": "@embedding.word", "mode": "masked"},
                    "decoder": {"type": "mlm_head", "eps": eps}, "target": {"type": "boltzmann"}},
        },
    }
    if sop:
        model["objectives"]["sop"] = {
            "input": "mlm_input", "target_view": "sop_label",
            "target_embedding": {"type": "category", "num_classes": 2},
            "decoder": {"type": "pool", "pool": "cls", "head": "linear"}, "target": {"type": "boltzmann"}}
    return model


def bert_recipe(model: Dict[str, Any], *, vocab: str, data_path: str = "data/bert_shards",
                seq_length: int = 128, lowercase: bool = True) -> Dict[str, Any]:
    return {
        "description": "BERT converted from another framework; continue pretraining or fine-tune it.",
        "tokenizer": {"type": "wordpiece", "vocab": vocab, "lowercase": lowercase},
        "model": model,
        "data": {"sources": [{"type": "token_shards", "weight": 1.0, "path": data_path,
                              "seq_length": seq_length, "mode": "bert"}]},
        "optim": {"type": "adamw", "lr": 1.0e-4, "betas": [0.9, 0.999], "weight_decay": 0.01},
        "schedule": {"type": "cosine", "warmup_steps": 10000},
        "train": {"total_steps": 1000000, "batch_size": 256, "precision": "bf16", "clip_grad": 1.0,
                  "seed": 0, "log_every": 100, "save_every": 10000, "keep_last": 3,
                  "output_dir": "runs/bert", "loggers": ["jsonl"]},
    }
