"""Export a checkpoint's online tower (patch embedding + ViT encoder) as safetensors with timm key names.

    python scripts/export.py --checkpoint runs/mae_vit --output vit.safetensors

The file's metadata holds "timm_kwargs" (JSON): build timm.models.vision_transformer.VisionTransformer with
them and load_state_dict the file (strict). The output is written under a temporary name, then renamed.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from m3i_modular.errors import ConfigError, entry_point  # noqa: E402


def export(checkpoint: str, output: str) -> dict:
    from safetensors.torch import save_file

    from m3i_modular.convert.timm_vit import to_timm_vit
    from m3i_modular.atomic import atomic_path
    from m3i_modular.inference import load

    if not output.endswith(".safetensors"):
        raise ConfigError(f"--output must end in .safetensors, got '{output}'")
    model = load(checkpoint).model
    tensors, kwargs = to_timm_vit(model)
    with atomic_path(output) as tmp:
        save_file(tensors, tmp, metadata={"format": "pt", "timm_kwargs": json.dumps(kwargs)})
    return kwargs


@entry_point()
def main(argv=None) -> int:
    p = argparse.ArgumentParser("export.py", description=__doc__.split("\n")[0])
    p.add_argument("--checkpoint", required=True, help="a run directory or a step_* checkpoint directory")
    p.add_argument("--output", required=True, help="the .safetensors file to write")
    args = p.parse_args(argv)
    kwargs = export(args.checkpoint, args.output)
    print(f"wrote {os.path.abspath(args.output)}: timm VisionTransformer({json.dumps(kwargs)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
