"""Full fine-tuning of a checkpoint's image tower (or of a recipe's tower at random init, the baseline) for image
classification, the MAE / BEiT protocol at our scale: layer-wise lr decay, drop-path, label smoothing,
mixup / cutmix, warmup + cosine; top-1 / top-5 on the held-out split.

It trains THROUGH THE PRETRAINING TRAINER: a fine-tuning recipe is derived from the checkpoint's own config
(m3i_modular/eval/finetune.py), written to OUTPUT_DIR/finetune_recipe.json and run by pretrain.py's machinery
with --init-from the checkpoint, so resume, checkpoints, metrics.jsonl and DDP are the pretraining ones.

    python finetune/run_image_classifier.py --checkpoint runs/mae_vit --steps 300 --output-dir runs/mae_ft
    python finetune/run_image_classifier.py --random-init --config models/mae_vit.json --output-dir runs/rand_ft
    python finetune/run_image_classifier.py --checkpoint runs/x --train-data data/train --val-data data/val
    torchrun --standalone --nproc_per_node 2 finetune/run_image_classifier.py --checkpoint runs/x ...

The model, data and output flags are the other evaluation entry points' (m3i_modular/eval_cli/common.py;
--set changes the source recipe, --ft-set the derived fine-tuning recipe, e.g. train.precision=fp32); the whole
training data is trained on, --val-samples of the held-out data are scored (stratified by class where the
source tells its labels). --resume continues an interrupted fine-tuning (or only re-scores a finished one).

JSON keys (--output, default OUTPUT_DIR/finetune.json): finetune_top1 (primary), finetune_top5, n_val,
finetune_steps, batch_size, lr, layer_decay, drop_path, label_smoothing, mixup, cutmix, mix_prob, num_classes,
run_dir, train_seconds, and the common ones.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the package, from a checkout

from m3i_modular.eval_cli.common import base_parser, run_main  # noqa: E402
from m3i_modular.eval_cli.image_classifier import applies, check, evaluate  # noqa: E402  (the logic)


def add_flags(p) -> None:
    p.add_argument("--num-classes", type=int, help="classes (default: what the training source says)")
    p.add_argument("--steps", type=int, default=300, help="optimizer steps (default 300)")
    p.add_argument("--lr", type=float, default=4e-3, help="base lr at batch 256, scaled linearly (default 4e-3)")
    p.add_argument("--layer-decay", type=float, default=0.75, help="layer-wise lr decay (default 0.75; 1 = off)")
    p.add_argument("--drop-path", type=float, default=0.1, help="stochastic depth of the last block (default 0.1)")
    p.add_argument("--label-smoothing", type=float, default=0.1, help="(default 0.1)")
    p.add_argument("--mixup", type=float, default=0.8, help="mixup Beta alpha, 0 = off (default 0.8)")
    p.add_argument("--cutmix", type=float, default=1.0, help="cutmix Beta alpha, 0 = off (default 1.0)")
    p.add_argument("--mix-prob", type=float, default=1.0,
                   help="share of batches mixed (default 1.0; at a few hundred steps 0.3 did better, README)")
    p.add_argument("--warmup-steps", type=int, default=20, help="linear warmup, then cosine (default 20)")
    p.add_argument("--weight-decay", type=float, default=0.05, help="AdamW weight decay (default 0.05)")
    p.add_argument("--crop-scale", type=float, default=0.5,
                   help="smallest random-resized-crop area share of the train view (default 0.5)")
    p.add_argument("--precision", choices=("fp32", "bf16", "fp16"), help="(default: the source recipe's)")
    p.add_argument("--save-every", type=int, default=0, help="checkpoint every N steps (default: the last only)")
    p.add_argument("--output-dir", help="the fine-tuning run directory (default runs/finetune/<source name>)")
    p.add_argument("--resume", action="store_true", help="continue the run in --output-dir if it has one")
    p.add_argument("--ft-set", dest="ft_overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a value of the derived fine-tuning recipe, e.g. train.precision=fp32 (repeatable)")
    p.set_defaults(num_workers=None)  # training: the source recipe's loader workers; scoring: 0


def main(argv=None) -> int:
    p = base_parser("run_image_classifier.py", __doc__.split("\n\n")[0], train_samples=None, batch_size=64,
                    batch_help="global training batch", seed_help="train.seed of the fine-tuning run and the seed "
                                                                 "of the held-out draw")
    add_flags(p)
    return run_main(p, "finetune", evaluate, argv, check=check, applies=applies, primary="finetune_top1")


if __name__ == "__main__":
    sys.exit(main())
