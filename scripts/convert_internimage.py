"""Convert an upstream InternImage-T/S/B classification checkpoint (OpenGVLab/InternImage) into a checkpoint
directory that `pretrain.py --init-from` loads.

    python scripts/convert_internimage.py --input internimage_t_1k_224.pth \
        --config models/supervised_internimage_base.json --output runs/internimage_t_init

Every upstream tensor is mapped by name (stem -> embedding, levels -> encoder.stages, conv_head ->
encoder.head, the classifier -> the category objective's class embeddings); a tensor with no mapping, a
shape that differs from the recipe's model, or a model tensor left without a value is an error. Pass
--backbone-only to drop the classifier (and conv_head when the recipe has no head). The input is read with
torch.load(weights_only=True) (or safetensors); the output directory is written under a temporary name.
The key table is m3i_modular/convert/internimage.py.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from m3i_modular.errors import entry_point  # noqa: E402


@entry_point()
def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--input", required=True, help="upstream .pth (or .safetensors)")
    p.add_argument("--config", required=True, help="the recipe whose model receives the weights")
    p.add_argument("--output", required=True, help="checkpoint directory to write (model.pt + config.json)")
    p.add_argument("--objective", default="category", help="objective whose class embeddings get the classifier")
    p.add_argument("--backbone-only", action="store_true", help="drop the classifier (and conv_head if unused)")
    p.add_argument("--force", action="store_true", help="replace an existing output directory")
    args = p.parse_args(argv)
    from m3i_modular.convert.internimage import convert  # torch: after parsing, so --help answers at once
    n = convert(args.input, args.config, args.output, objective=args.objective, backbone_only=args.backbone_only,
                force=args.force)
    print(f"wrote {n} tensors to {args.output} (load with pretrain.py --init-from {args.output})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
