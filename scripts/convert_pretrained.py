#!/usr/bin/env python
"""A recipe whose model has the shape of a pretrained open_clip or Hugging Face ViT model, so that
`pretrain.py --init-from` fills every tensor (the rest of the recipe comes from --base).

    python scripts/convert_pretrained.py --open-clip-config ViT-B-16.json --base models/clip_vit_base.json \\
        --output models/clip_from_open_clip.json
    python pretrain.py --config models/clip_from_open_clip.json --init-from open_clip_pytorch_model.bin

    python scripts/convert_pretrained.py --hf-vit google-vit-base/ --base models/supervised_vit_base.json \\
        --output models/vit_from_hf.json

open_clip's text tower reads open_clip's BPE token ids: its weights load, but a recipe tokenizer other than
the one it was trained with gives it different ids.
"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from m3i_modular.runtime.atomic import atomic_write_text  # noqa: E402
from m3i_modular.errors import ConfigError, entry_point  # noqa: E402


def _read_json(path: str) -> dict:
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        raise ConfigError(f"{path}: cannot read ({e})") from None


@entry_point()
def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--open-clip-config", help="an open_clip model config (model_configs/*.json or a hub "
                     "open_clip_config.json)")
    src.add_argument("--hf-vit", help="a Hugging Face ViT directory (its config.json)")
    p.add_argument("--base", required=True, help="the recipe whose data, views, optim, train sections to keep")
    p.add_argument("--output", required=True, help="the recipe (.json) to write")
    args = p.parse_args(argv)
    from m3i_modular.recipe.config import dump_config, load_config
    recipe = json.loads(dump_config(load_config(args.base)))  # its "base" chain resolved
    if args.open_clip_config:
        from m3i_modular.convert.open_clip import model_section
        section = model_section(_read_json(args.open_clip_config))
        src_name = args.open_clip_config
    else:
        from m3i_modular.convert.hf_vit import model_section
        section = model_section(_read_json(os.path.join(args.hf_vit, "config.json")))
        src_name = args.hf_vit
    recipe = dict(recipe, model=section)
    recipe.pop("shared", None)
    recipe["description"] = f"{recipe.get('description', '')} Model shaped like {os.path.basename(src_name)} " \
                            f"for --init-from (scripts/convert_pretrained.py).".strip()
    recipe.pop("base", None)
    base_dir = os.path.dirname(os.path.abspath(args.base))
    for k, v in (recipe.get("tokenizer") or {}).items():  # its files are relative to the base recipe
        if isinstance(v, str) and not os.path.isabs(v) and os.path.exists(os.path.join(base_dir, v)):
            recipe["tokenizer"][k] = os.path.join(base_dir, v)
    atomic_write_text(args.output, json.dumps(recipe, indent=2) + "\n")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
