"""Compare pretraining recipes: recipes x seeds at equal steps and batch -> pretrain -> every applicable
evaluation -> per-cell results JSON -> a markdown table (mean ± sd over seeds) and a PNG chart.

    python scripts/compare_recipes.py --study m3i --out studies/m3i --jobs 2 --threads 1   # issue 15's study (CPU)
    python scripts/compare_recipes.py --study m3i --steps-mult 10 --device cuda --jobs 6 --num-workers 2 \\
        --out studies/m3i_x10                                                       # the same at 10x steps
    python scripts/compare_recipes.py --recipes mae_vit supervised_vit random_init --seeds 0 1 \\
        --steps 200 --batch-size 64 --evals linear knn --out studies/mine
    python scripts/compare_recipes.py --recipes mae_vit clip_vit --data data/train data/val --out studies/own
    python scripts/compare_recipes.py --study m3i --out studies/m3i --plan          # print the plan only
    python scripts/compare_recipes.py --study m3i --out studies/m3i --report        # rebuild table + chart

A study entry is a recipe name (models/NAME.json) or path; `A>B@0.5` is a multi-stage pipeline (A for half
the steps, then B `--init-from` A for the rest: the same total steps; `A>B>C@0.3,0.7` gives the switch points);
`random_init` (or `random_init:RECIPE`) is the floor: the evaluations of an untrained tower.

A study file (--study FILE.json) holds {"entries": [...], "seeds": [...], "evals": [...], "protocol": {"steps":
..., "batch_size": ..., "ft_args": [...], ...}, "set": ["KEY=VALUE", ...], "imports": [...]}; flags override it.
The preset `m3i` is issue 15's study: 8 entries x 3 seeds at 500 steps x 64, about 60 minutes on 2 CPU cores
(measured per task; the plan prints the estimate). On a GPU machine the pretraining of these tiny models is
bound by the CPU cores that render and augment the views (the loader workers), not by the GPU: on the 16-core
H100 machine 8 jobs x 2 workers saturate the cores, and the study takes about 4 minutes at --steps-mult 1,
7-8 at 2 and half an hour at 10.

Every finished piece of work leaves a marker and is never recomputed: rerunning the same command continues
where it stopped (an interrupted pretraining resumes from its last checkpoint). Evaluations are the entry points
in finetune/, called as subprocesses with their shared contract (m3i_modular/eval_cli/common.py: `--checkpoint
RUN` or `--random-init --config RECIPE`, `--output FILE.json`, flat JSON keys); EVALUATIONS in
m3i_modular/study/plan.py is the one table of them. Whether one applies (zero-shot needs a text tower, the
dense probe pixel masks) is the entry point's own `--check`, asked once per recipe; one that does not apply is
recorded as n/a, a missing entry point is skipped with a note.

Modules of m3i_modular/study/: plan.py (protocol, evaluations, presets, entries), run.py (running the cells),
report.py (table and chart); cli.py is the command line (scripts/compare_recipes.py calls its main).
"""

import argparse
import json
import os
import shlex
import sys
import time
from typing import List, Tuple

# imported by name: the tests swap EVALUATIONS, Study.run and report here
from .plan import COUNTS, EVAL_BY_NAME, EVALUATIONS, PRESETS, SAME_PROTOCOL, Entry, Protocol, parse_entry
from .report import report
from .run import Options, Study, now, read_json, write_json


# -- command line ------------------------------------------------------------------------------------------
def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="compare_recipes.py", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("--study", help="a preset (" + ", ".join(PRESETS) + ") or a study JSON file")
    p.add_argument("--recipes", nargs="+", metavar="ENTRY", help="entries (instead of or replacing the study's)")
    p.add_argument("--seeds", nargs="+", type=int, help="seeds (default: the study's, or 0)")
    p.add_argument("--evals", nargs="*", help=f"evaluations (default: the study's, or all: "
                                              f"{', '.join(EVAL_BY_NAME)})")
    p.add_argument("--out", required=True, help="the study directory (rerunning the same command continues it)")
    p.add_argument("--steps", type=int, help="pretraining steps of every entry")
    p.add_argument("--batch-size", type=int, help="pretraining batch of every entry")
    p.add_argument("--steps-mult", type=float, default=1.0,
                   help="multiply the pretraining and fine-tuning steps (e.g. 10 on a GPU machine)")
    p.add_argument("--random-init-recipe", default="supervised_vit",
                   help="the recipe whose untrained tower is the random_init row (default supervised_vit)")
    p.add_argument("--data", nargs=2, metavar=("TRAIN", "VAL"),
                   help="pretrain on TRAIN (an image folder, shards or a JSON source) and evaluate on TRAIN/VAL")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a value of every pretraining recipe (repeatable)")
    p.add_argument("--import", dest="imports", action="append", default=[], metavar="MODULE",
                   help="a module registering components, for pretraining and evaluations (repeatable)")
    for key in COUNTS[2:]:
        name = key.replace("_", "-")
        p.add_argument(f"--{name}", type=int, help=f"protocol: {name} (default: the study's)")
    p.add_argument("--ft-args", help="more run_image_classifier.py flags for the fine-tuning evaluation, in one "
                                     "string (default: the study's), e.g. \"--lr 4e-3 --mixup 0\"")
    p.add_argument("--device", help="train.device of pretraining and --device of the evaluations (cpu, cuda; "
                                    "default: auto, a GPU when there is one)")
    p.add_argument("--num-workers", type=int, help="data loader workers of pretraining and evaluations")
    p.add_argument("--jobs", type=int, help="cells run at once (default: the number of CPU cores; tiny models "
                                            "use one core per process best)")
    p.add_argument("--threads", type=int, help="torch threads per process (default: cores / jobs, at least 1)")
    p.add_argument("--plan", action="store_true", help="print the plan and exit")
    p.add_argument("--report", action="store_true", help="only rebuild the table and chart from finished cells")
    return p.parse_args(argv)


def build(args) -> Tuple[List[Entry], Options]:
    study = {}
    if args.study:
        if args.study in PRESETS:
            study = json.loads(json.dumps(PRESETS[args.study]))
        else:
            study = read_json(args.study)
            if not isinstance(study, dict):
                raise ValueError(f"--study: '{args.study}' is neither a preset ({', '.join(PRESETS)}) nor a JSON file")
    names = args.recipes or study.get("entries")
    if not names:
        raise ValueError("no entries: give --study or --recipes")
    entries = [parse_entry(n, random_init_recipe=args.random_init_recipe) for n in names]
    if len({e.slug for e in entries}) != len(entries):
        raise ValueError("two entries share a name")
    proto = Protocol(**study.get("protocol", {}))
    for key in COUNTS:
        v = getattr(args, key)
        if v is not None:
            if v < 1:
                raise ValueError(f"--{key.replace('_', '-')} must be >= 1")
            setattr(proto, key, v)
    if args.steps_mult <= 0:
        raise ValueError("--steps-mult must be > 0")
    proto.steps = max(1, int(round(proto.steps * args.steps_mult)))
    proto.ft_steps = max(1, int(round(proto.ft_steps * args.steps_mult)))
    if args.ft_args is not None:
        proto.ft_args = shlex.split(args.ft_args)
    proto.device, proto.num_workers = args.device, args.num_workers
    proto.data = tuple(args.data) if args.data else None
    for e in entries:
        if not e.random_init:
            e.stage_steps(proto.steps)  # every stage gets steps
    eval_names = args.evals if args.evals is not None else study.get("evals", list(EVAL_BY_NAME))
    unknown = [n for n in eval_names if n not in EVAL_BY_NAME]
    if unknown:
        raise ValueError(f"unknown evaluation(s) {unknown} (valid: {', '.join(EVAL_BY_NAME)})")
    evals = [e for e in EVALUATIONS if e.name in eval_names]
    seeds = args.seeds or study.get("seeds") or [0]
    jobs = max(1, args.jobs or os.cpu_count() or 1)
    threads = args.threads or max(1, (os.cpu_count() or 1) // jobs)
    return entries, Options(out=args.out, protocol=proto, evals=evals, seeds=list(seeds),
                            overrides=list(study.get("set", [])) + args.overrides,
                            imports=list(study.get("imports", [])) + args.imports, threads=threads, jobs=jobs)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        entries, opts = build(args)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    os.makedirs(opts.out, exist_ok=True)
    if args.report:
        report(opts.out, entries, opts)
        return 0
    study = Study(entries, opts)
    if args.plan:
        print(study.plan(), flush=True)
        return 0
    # a study directory holds one protocol: finished cells are reused, so a changed one would mix numbers
    path = os.path.join(opts.out, "study.json")
    before = read_json(path) or {}
    proto = json.loads(json.dumps(opts.protocol.__dict__))
    differ = [k for k in SAME_PROTOCOL if k in before.get("protocol", {}) and before["protocol"][k] != proto[k]]
    if before.get("set", opts.overrides) != opts.overrides:
        differ.append("--set")
    if differ:
        print(f"error: '{opts.out}' holds a study run with another {', '.join(differ)}: its finished cells would "
              f"mix with these; use another --out", file=sys.stderr)
        return 2
    write_json(path, {"entries": sorted(set(before.get("entries", [])) | {e.label for e in entries}),
                      "seeds": sorted(set(before.get("seeds", [])) | set(opts.seeds)),
                      "evals": [e.name for e in opts.evals], "protocol": proto, "set": opts.overrides,
                      "imports": opts.imports, "command": sys.argv, "started": before.get("started", now()),
                      "last_run": now()})
    study.check_all()  # which evaluations apply: each entry point's --check, once per recipe
    print(study.plan(), flush=True)
    rc = study.run()
    report(opts.out, entries, opts)
    print(f"total: {(time.perf_counter() - study.t0) / 60:.1f} min wall", flush=True)
    if study.failures:
        print(f"{len(study.failures)} task(s) failed (rerun the same command to retry them):", file=sys.stderr)
        for f in study.failures:
            print(f"  {f}", file=sys.stderr)
    return rc
