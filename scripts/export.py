"""Export a checkpoint's towers to the tools labs already use.

    python scripts/export.py --checkpoint runs/mae_vit --output vit.safetensors                  # timm
    python scripts/export.py --checkpoint runs/clip --format open_clip --output out/clip_oc      # open_clip
    python scripts/export.py --checkpoint runs/vit --format hf_vit --output out/vit_hf           # Hugging Face

timm: one .safetensors with timm key names; its metadata holds "timm_kwargs" (JSON): build
timm.models.vision_transformer.VisionTransformer with them and load_state_dict the file (strict).
open_clip (a clip_vit-shaped model: image tower + linear image head + text_tower): a new directory with
open_clip_config.json (model_cfg + preprocess_cfg) and open_clip_model.safetensors, loaded by
open_clip.create_model("local-dir:DIR"). hf_vit: a new directory with config.json + model.safetensors,
loaded by transformers.ViTModel.from_pretrained(DIR). Outputs are written under a temporary name, then renamed.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from m3i_modular.runtime.atomic import new_output_dir  # noqa: E402
from m3i_modular.errors import ConfigError, entry_point  # noqa: E402

FORMATS = ("timm", "open_clip", "hf_vit")


def _normalize_stats(cfg: dict):
    """mean / std of the recipe's first `normalize` view transform (ImageNet's by default)."""
    for steps in (cfg.get("views") or {}).values():
        for s in steps if isinstance(steps, list) else []:
            if isinstance(s, dict) and s.get("type") == "normalize":
                return s.get("mean", (0.485, 0.456, 0.406)), s.get("std", (0.229, 0.224, 0.225))
    return (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def _new_dir(output: str, files) -> None:
    """Write {name: writer(path)} into a new directory `output`, all or nothing."""
    with new_output_dir(output) as tmp:
        for name, write in files.items():
            write(os.path.join(tmp, name))


def export(checkpoint: str, output: str, fmt: str = "timm", eos_id: int | None = None) -> dict:
    """Write the export; return what describes it (timm kwargs, open_clip model_cfg, HF config)."""
    from safetensors.torch import save_file

    from m3i_modular.runtime.atomic import atomic_path
    from m3i_modular.inference import load

    if fmt not in FORMATS:
        raise ConfigError(f"--format must be one of {', '.join(FORMATS)}, got '{fmt}'")
    if fmt == "timm" and not output.endswith(".safetensors"):
        raise ConfigError(f"--output must end in .safetensors, got '{output}'")
    pre = load(checkpoint)
    if fmt == "timm":
        from m3i_modular.convert.timm_vit import to_timm_vit
        tensors, kwargs = to_timm_vit(pre.model)
        with atomic_path(output) as tmp:
            save_file(tensors, tmp, metadata={"format": "pt", "timm_kwargs": json.dumps(kwargs)})
        return kwargs
    if fmt == "hf_vit":
        from m3i_modular.convert.hf_vit import to_hf_vit
        return to_hf_vit(pre.model, output)
    from m3i_modular.convert.open_clip import to_open_clip
    if eos_id is None and pre.tokenizer is not None:
        eos_id = getattr(pre.tokenizer, "eos_id", None)
    mean, std = _normalize_stats(pre.cfg)
    tensors, cfg = to_open_clip(pre.model, eos_id=eos_id, mean=mean, std=std)
    _new_dir(output, {"open_clip_model.safetensors": lambda p: save_file(tensors, p, metadata={"format": "pt"}),
                      "open_clip_config.json": lambda p: Path(p).write_text(json.dumps(cfg, indent=2) + "\n")})
    return cfg["model_cfg"]


@entry_point()
def main(argv=None) -> int:
    p = argparse.ArgumentParser("export.py", description=__doc__.split("\n")[0])
    p.add_argument("--checkpoint", required=True, help="a run directory or a step_* checkpoint directory")
    p.add_argument("--format", default="timm", choices=FORMATS, help="timm (default), open_clip or hf_vit")
    p.add_argument("--output", required=True,
                   help="timm: the .safetensors file to write; open_clip / hf_vit: a new directory")
    p.add_argument("--eos-id", type=int, help="open_clip: the tokenizer's EOS id the text tower pools at "
                   "(default: the checkpoint tokenizer's; without one open_clip pools the largest id)")
    args = p.parse_args(argv)
    desc = export(args.checkpoint, args.output, args.format, args.eos_id)
    print(f"wrote {os.path.abspath(args.output)} ({args.format}): {json.dumps(desc)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
