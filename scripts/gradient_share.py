#!/usr/bin/env python
"""Each objective's pull on the shared tower (m3i_modular/eval/gradients.py): the norm of the gradient of its
weighted loss on the embedding + encoder, its share, and the cosine between objectives, averaged over a few
training batches of the recipe's own data and views.

    python scripts/gradient_share.py --checkpoint runs/m3i_vit
    python scripts/gradient_share.py --random-init --config models/m3i_vit.json --batches 4
"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402

from m3i_modular.recipe.config import import_plugins, load_config  # noqa: E402
from m3i_modular.errors import ConfigError, DataError, entry_point  # noqa: E402
from m3i_modular.eval.gradients import average, objective_gradients  # noqa: E402


def batches(pretrained, n: int, size: int, seed: int):
    from m3i_modular.data.views.pipeline import PretrainDataset, build_views, collate
    cfg = pretrained.cfg
    ds = PretrainDataset(cfg["data"], build_views(cfg.get("views", {})), tokenizer=pretrained.tokenizer, seed=seed)
    for b in range(n):
        items = [ds[p] for p in range(b * size, (b + 1) * size)]
        yield collate([it for it in items if it is not None])


@entry_point()
def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="gradient_share.py", description=__doc__.split("\n\n")[0])
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--checkpoint", help="a run directory (its latest checkpoint) or a checkpoints/step_* dir")
    src.add_argument("--random-init", action="store_true", help="the recipe's model at init")
    p.add_argument("--config", help="recipe for --random-init")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--import", dest="imports", action="append", default=[], metavar="MODULE")
    p.add_argument("--batches", type=int, default=4, help="training batches averaged (default 4)")
    p.add_argument("--batch-size", type=int, default=64, help="(default 64)")
    p.add_argument("--seed", type=int, default=0, help="data order and the mixing draws (default 0)")
    p.add_argument("--output", help="also write the JSON here")
    args = p.parse_args(argv)
    if args.batches < 1 or args.batch_size < 2:
        raise ConfigError("--batches must be >= 1 and --batch-size >= 2")
    import_plugins(args.imports)
    from m3i_modular.inference import Pretrained, load
    from m3i_modular.run import build_tokenizer
    if args.random_init:
        if not args.config:
            raise ConfigError("--random-init needs --config RECIPE")
        cfg = load_config(args.config, overrides=args.overrides)
        model = Pretrained.from_config(cfg, tokenizer=build_tokenizer(cfg, base_dir=os.path.dirname(args.config)))
    else:
        model = load(args.checkpoint, overrides=args.overrides)
    torch.manual_seed(args.seed)
    net = model.model.train()
    results = [objective_gradients(net, b) for b in batches(model, args.batches, args.batch_size, args.seed)]
    if not results:
        raise DataError("no batch could be read")
    res = average(results)
    print(f"{'objective':14s} {'weight':>6s} {'loss':>8s} {'|grad|':>9s} {'share':>6s}", file=sys.stderr)
    for n, share in res["share"].items():
        print(f"{n:14s} {net.objectives[n].weight:6.2f} {res['loss'][n]:8.4f} {res['norm'][n]:9.4f} "
              f"{100 * share:5.1f}%", file=sys.stderr)
    for pair, c in res["cosine"].items():
        print(f"cos({pair.replace('|', ', ')}) = {c:+.3f}", file=sys.stderr)
    if args.output:
        with open(args.output, "w") as f:
            json.dump(res, f, indent=2)
    print(json.dumps(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
