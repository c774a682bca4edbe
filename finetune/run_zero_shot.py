"""Image-text transfer of a model with a text tower (CLIP, M3I): zero-shot classification with class-name
prompts, and image<->text retrieval R@1/5/10 on the held-out data's captions (m3i_modular/eval/zero_shot.py).
Nothing is trained, so only the held-out side (--val-data or the recipe's --eval-split) is read.

    python finetune/run_zero_shot.py --checkpoint runs/clip_vit
    python finetune/run_zero_shot.py --checkpoint runs/m3i_vit --template "a photo of a {name}" --template "a {name}"
    python finetune/run_zero_shot.py --checkpoint runs/clip_vit --val-data data/pets/val      # class folders

Class names come from the source (synthetic_shapes, an image folder's sub-folders, the manifest.json of shards
from `preprocess.py images --folder`) or --class-names. Zero-shot needs class names and labels, retrieval
needs captions; the one the data allows runs, and neither is "does not apply".

JSON keys: zero_shot_acc (primary when class names are known), zero_shot_top5 (more than 5 classes),
num_classes, chance, n_prompts, i2t_r1/5/10 and t2i_r1/5/10 (i2t_r1 primary without class names),
n_captions, n_distinct_captions, objective, n_test, and the common ones (m3i_modular/eval_cli/common.py).
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the package, from a checkout

from m3i_modular.eval_cli.common import base_parser, run_main  # noqa: E402
from m3i_modular.errors import ConfigError, DataError  # noqa: E402
from m3i_modular.eval import zero_shot as zs  # noqa: E402


def check(args) -> None:
    for t in args.template or []:
        if "{name}" not in t:
            raise ConfigError(f"--template '{t}' has no {{name}} for the class name")
    if any(k < 1 for k in args.ks):
        raise ConfigError(f"--ks must be >= 1, got {args.ks}")


def _class_names(ctx):
    if ctx.args.class_names:
        path = ctx.args.class_names
        try:
            with open(path, encoding="utf-8") as f:
                names = [line.strip() for line in f if line.strip()]
        except OSError as e:
            raise ConfigError(f"--class-names '{path}': cannot read ({e.strerror})") from None
        if not names:
            raise ConfigError(f"--class-names '{path}' holds no names (one per line)")
        return names
    return ctx.splits["val"].class_names()


def applies(ctx):
    reason = zs.why_not(ctx.model)
    if reason:
        return reason
    if ctx.args.objective is not None:
        zs.text_objective(ctx.model, ctx.args.objective)  # a wrong name is a user mistake: raises
    first = ctx.splits["val"].first()
    if first.get("caption") is None and not (_class_names(ctx) and first.get("label") is not None):
        return f"the held-out data ({ctx.splits['val'].data}) has neither captions (retrieval) nor class " \
               f"names with labels (zero-shot)"
    return None


def evaluate(ctx) -> dict:
    args, model = ctx.args, ctx.model
    objective = zs.text_objective(model, args.objective)
    held_out = ctx.read("val", encode=lambda x: zs.encode_images(model, x, objective, args.batch_size),
                        with_caption=True)
    names = _class_names(ctx)
    out = {"objective": objective, "n_test": len(held_out)}
    primary = None
    labelled = held_out.labels >= 0
    if names and bool(labelled.any()):
        top = int(held_out.labels.max())
        if top >= len(names):
            raise DataError(f"label {top} has no class name ({len(names)} names)")
        templates = args.template or list(zs.DEFAULT_TEMPLATES)
        cls = zs.class_text_embeddings(model, names, templates, objective)
        out.update(zs.zero_shot_scores(held_out.x, held_out.labels, cls))
        out.update({"num_classes": len(names), "chance": 1.0 / len(names), "n_prompts": len(templates),
                    "n_zero_shot": int(labelled.sum())})
        primary = "zero_shot_acc"
    pairs = [i for i, c in enumerate(held_out.captions) if c]
    if pairs and not args.no_retrieval:
        caps = [held_out.captions[i] for i in pairs]
        out.update(zs.image_text_retrieval(held_out.x[pairs], caps,
                                           lambda texts: zs.encode_texts(model, texts, objective, args.batch_size),
                                           ks=args.ks))
        out.update({"n_captions": len(caps), "n_distinct_captions": len(set(caps))})
        primary = primary or f"i2t_r{args.ks[0]}"
    if primary is None:
        raise DataError("the held-out samples have neither labels with class names nor captions")
    out["primary"] = primary
    return out


def main(argv=None) -> int:
    p = base_parser("run_zero_shot.py", "Zero-shot classification and image<->text retrieval.", uses_train=False)
    p.add_argument("--objective", help="the image-text objective (default: the model's only one)")
    p.add_argument("--template", action="append", metavar="TEXT",
                   help=f"prompt template with {{name}} (repeatable, averaged; default "
                        f"{' / '.join(zs.DEFAULT_TEMPLATES)})")
    p.add_argument("--class-names", metavar="FILE", help="class names, one per line in label order (default: "
                                                          "from the source)")
    p.add_argument("--ks", type=int, nargs="+", default=[1, 5, 10], help="retrieval R@K (default 1 5 10)")
    p.add_argument("--no-retrieval", action="store_true", help="zero-shot classification only")
    return run_main(p, "zero_shot", evaluate, argv, check=check, applies=applies, splits=("val",),
                    primary="zero_shot_acc")


if __name__ == "__main__":
    sys.exit(main())
