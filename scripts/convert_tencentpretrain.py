#!/usr/bin/env python
"""TencentPretrain -> ours: a flat model config -> our recipe, and optionally its checkpoint -> ours.

    python scripts/convert_tencentpretrain.py --config models/bert/base_config.json \\
        --vocab models/google_uncased_en_vocab.txt --output models/bert_from_tp.json \\
        [--checkpoint bert_base.bin --output-checkpoint ckpt/bert_from_tp]

Converts BERT / XLM-R / Megatron-BERT, GPT-2, ViT, CLIP (two streams) and BART configs; anything else is
refused with one line naming what has no counterpart. The checkpoint report lists the TencentPretrain
tensors that found no place and our tensors that the checkpoint did not fill.
"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402

from m3i_modular.runtime.atomic import atomic_write_text  # noqa: E402
from m3i_modular.training.checkpoint import run_metadata, save_checkpoint  # noqa: E402
from m3i_modular.convert.bert_recipe import bert_recipe  # noqa: E402
from m3i_modular.convert.tencentpretrain import convert_config  # noqa: E402
from m3i_modular.convert.tencentpretrain_state import convert_state  # noqa: E402
from m3i_modular.errors import ConfigError, DataError  # noqa: E402


def _image_recipe(model: dict, size: int) -> dict:
    return {"model": model,
            "data": {"sources": [{"type": "synthetic_shapes", "weight": 1.0, "image_size": size}]},
            "views": {"view1": [{"type": "random_resized_crop", "size": size}, {"type": "normalize"}]},
            "train": {"total_steps": 1000, "batch_size": 256}}


def build_recipe(args, notes=None) -> dict:
    try:
        with open(args.config) as f:
            tp = json.load(f)
    except (OSError, ValueError) as e:
        raise ConfigError(f"{args.config}: cannot read TencentPretrain config ({e})") from None
    vocab_size, mask_id, specials = args.vocab_size, 103, [0, 100, 101, 102, 103]
    if args.vocab:
        from m3i_modular.data.tokenizers import tokenizer_from_path
        tok = tokenizer_from_path(args.vocab)
        vocab_size, specials = tok.vocab_size, tok.special_ids
        mask_id = tok.mask_id if tok.mask_id is not None else mask_id
    model = convert_config(tp, vocab_size=vocab_size, mask_id=mask_id, special_ids=specials, notes=notes)
    vocab = os.path.abspath(args.vocab) if args.vocab else "vocab.txt"
    if "clip" in model["objectives"]:
        recipe = _image_recipe(model, model["embedding"]["image_size"])
        recipe["tokenizer"] = {"type": "wordpiece", "vocab": vocab, "lowercase": True}
        recipe["data"]["text_length"] = min(77, tp["stream_0"].get("max_seq_length", 77))
        return recipe
    if model["embedding"].get("type") == "patch":
        return _image_recipe(model, model["embedding"]["image_size"])
    mode = "bert" if "mlm_input" in json.dumps(model) else "lm"
    recipe = bert_recipe(model, vocab=vocab, seq_length=min(128, tp.get("max_seq_length", 128)))
    recipe["data"]["sources"][0]["mode"] = mode
    return recipe


def convert_checkpoint(recipe: dict, checkpoint: str, output: str) -> dict:
    """Write our checkpoint from a TencentPretrain one; return the report."""
    from m3i_modular.recipe.model import build_model
    model = build_model(recipe["model"], recipe.get("shared"), seed=0)
    state = model.state_dict()
    sd = torch.load(checkpoint, map_location="cpu", weights_only=True)
    if not isinstance(sd, dict) or not all(torch.is_tensor(v) for v in sd.values()):
        raise ConfigError(f"{checkpoint}: not a state dict of tensors")
    converted, left = convert_state(sd, recipe["model"])
    for k, v in converted.items():
        if k not in state or state[k].shape != v.shape:
            have = tuple(state[k].shape) if k in state else "absent"
            raise ConfigError(f"converted tensor '{k}' {tuple(v.shape)} does not fit the recipe ({have})")
        state[k] = v.to(state[k].dtype)
    save_checkpoint(output, 0, {"model": state}, config=recipe,
                    meta=dict(run_metadata(1, "fp32"), converted_from=os.path.abspath(checkpoint)))
    return {"converted": len(converted), "left": left, "new": sorted(set(state) - set(converted))}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", required=True, help="TencentPretrain model config (models/*/..._config.json)")
    p.add_argument("--vocab", help="the vocab file TencentPretrain used (gives vocab size and special ids)")
    p.add_argument("--vocab-size", type=int, default=0, help="vocabulary size, when no --vocab is given")
    p.add_argument("--output", required=True, help="our recipe (.json) to write")
    p.add_argument("--checkpoint", help="TencentPretrain checkpoint (.bin, a state dict of tensors)")
    p.add_argument("--output-checkpoint", help="our checkpoint root to write the converted weights to")
    args = p.parse_args(argv)
    notes = []
    try:
        recipe = build_recipe(args, notes)
        report = None
        if args.checkpoint:
            if not args.output_checkpoint:
                raise ConfigError("--checkpoint needs --output-checkpoint")
            report = convert_checkpoint(recipe, args.checkpoint, args.output_checkpoint)
        atomic_write_text(args.output, json.dumps(recipe, indent=2) + "\n")
    except (ConfigError, DataError) as e:
        print(f"convert_tencentpretrain.py: error: {e}", file=sys.stderr)
        return 2
    for n in notes:
        print(f"note: {n}", file=sys.stderr)
    if report is not None:
        print(f"converted {report['converted']} tensors; left in the TencentPretrain checkpoint "
              f"{len(report['left'])} {report['left'][:8]}; not in it (initialised) {len(report['new'])} "
              f"{report['new'][:8]}", file=sys.stderr)
    print(f"wrote {args.output}" + (f" and {args.output_checkpoint}" if args.checkpoint else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
