#!/usr/bin/env python
"""Compare pretraining recipes: recipes x seeds at equal steps and batch -> pretrain -> every applicable
evaluation -> per-cell results JSON -> a markdown table (mean ± sd over seeds) and a PNG chart.

    python scripts/compare_recipes.py --study m3i --out studies/m3i                 # issue 15's study (CPU)
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
in finetune/, called as subprocesses with the shared contract (`--checkpoint RUN` or `--random-init --config
RECIPE`, `--output FILE.json`, ...); EVALUATIONS below is the one table of them. A missing entry point is
skipped with a note, an evaluation that says it is "not applicable" (exit 2) is recorded as n/a.
"""

import argparse
import concurrent.futures as futures
import datetime
import functools
import json
import math
import os
import re
import shlex
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)


# -- the protocol ------------------------------------------------------------------------------------------
@dataclass
class Protocol:
    steps: int = 300                 # pretraining steps of every entry (a pipeline's stages share them)
    batch_size: int = 64             # pretraining batch of every entry
    probe_train: int = 2000          # linear probe / k-NN: train and held-out samples
    probe_val: int = 1000
    low_label: int = 100             # low-label linear probe: labelled train samples
    knn_k: int = 20
    ft_steps: int = 200              # fine-tuning steps and batch
    ft_batch: int = 64
    ft_args: List[str] = field(default_factory=list)  # more run_image_classifier.py flags (lr, mixing, ...)
    dense_train: int = 500           # dense probe: train and held-out images
    dense_val: int = 250
    zero_shot_val: int = 1000        # zero-shot / retrieval: held-out images
    device: Optional[str] = None     # --device of the evaluations (None: theirs, auto)
    num_workers: Optional[int] = None  # data loader workers of pretraining and evaluations
    data: Optional[Tuple[str, str]] = None  # --data TRAIN VAL


# what a study directory's finished cells depend on (device, workers and the data paths' spelling do not count)
SAME_PROTOCOL = ("steps", "batch_size", "probe_train", "probe_val", "low_label", "knn_k", "ft_steps", "ft_batch",
                 "ft_args", "dense_train", "dense_val", "zero_shot_val")


@dataclass(frozen=True)
class Evaluation:
    """One evaluation entry point. `columns`: table column -> keys to look for in its flat JSON (first found);
    `args`: its protocol flags; `needs`: "text" = only where the recipe has a text tower."""
    name: str
    script: str
    columns: Dict[str, Tuple[str, ...]]
    args: Callable[[Protocol, str], List[str]]
    needs: str = ""
    cpu_s: float = 30.0              # rough cost on a 2-core CPU at the default protocol (for the plan)


def _n(x) -> str:
    return str(int(x))


# The evaluations, in table order. Adding one is one line here.
EVALUATIONS: List[Evaluation] = [
    Evaluation("linear", "finetune/run_linear_probe.py", {"linear": ("accuracy",)},
               lambda p, d: ["--train-samples", _n(p.probe_train), "--val-samples", _n(p.probe_val)], cpu_s=11),
    Evaluation("low_label", "finetune/run_linear_probe.py", {"low_label": ("accuracy",)},
               lambda p, d: ["--train-samples", _n(p.low_label), "--val-samples", _n(p.probe_val)], cpu_s=6),
    Evaluation("knn", "finetune/run_knn.py", {"knn": ("accuracy", f"accuracy.{20}", "accuracy_20", "top1")},
               lambda p, d: ["--train-samples", _n(p.probe_train), "--val-samples", _n(p.probe_val),
                             "--k", _n(p.knn_k)], cpu_s=6),
    Evaluation("finetune", "finetune/run_image_classifier.py", {"finetune": ("top1",)},
               lambda p, d: ["--steps", _n(p.ft_steps), "--batch-size", _n(p.ft_batch), "--val-samples",
                             _n(p.probe_val), "--output-dir", os.path.join(d, "finetune_run"), "--resume",
                             *p.ft_args],
               cpu_s=100),
    Evaluation("dense", "finetune/run_dense_probe.py", {"dense_miou": ("miou", "mIoU", "mean_iou")},
               lambda p, d: ["--train-samples", _n(p.dense_train), "--val-samples", _n(p.dense_val)], cpu_s=15),
    Evaluation("zero_shot", "finetune/run_zero_shot.py",
               {"zero_shot": ("accuracy", "zero_shot_accuracy", "top1"),
                "retrieval_r1": ("i2t_r1", "image_to_text_r1", "r1", "recall_at_1", "R@1")},
               lambda p, d: ["--val-samples", _n(p.zero_shot_val)], needs="text", cpu_s=10),
]
EVAL_BY_NAME = {e.name: e for e in EVALUATIONS}
COLUMN_TITLES = {"linear": "linear", "low_label": "low-label", "knn": "k-NN", "finetune": "fine-tune",
                 "dense_miou": "dense mIoU", "zero_shot": "zero-shot", "retrieval_r1": "R@1 i→t"}

# CPU seconds (user + system, loader worker included) per pretraining step at batch 64 with one thread
# (OMP_NUM_THREADS=1, the recipe's one loader worker), measured on the 2-core development machine as the
# difference of a 35-step and a 5-step run -- only for the plan's time estimate.
CPU_S_PER_STEP_B64 = {"supervised_vit": 0.24, "mae_vit": 0.19, "clip_vit": 0.28, "byol_vit": 0.67,
                      "mocov3_vit": 0.70, "siameseim_vit": 0.61, "m3i_vit": 0.77}
CPU_S_START = 4.0   # interpreter + torch import + model build, per subprocess
# The same with the model on a GPU (--device cuda): what is left on the CPU is the data pipeline (rendering and
# augmenting the views in the loader workers) and the main process driving the GPU. Measured on the 16-core H100
# machine: 8 recipes at once, 2 loader workers each, saturate its cores (16 cores x wall / steps).
GPU_CPU_S_PER_STEP_B64 = {"supervised_vit": 0.13, "mae_vit": 0.14, "clip_vit": 0.15, "byol_vit": 0.35,
                          "mocov3_vit": 0.35, "siameseim_vit": 0.33, "m3i_vit": 0.34}

# Issue 15's study. Defaults measured to fit 90 minutes on 2 CPU cores (see README).
PRESETS = {
    "m3i": {
        "entries": ["supervised_vit", "clip_vit", "byol_vit", "mae_vit", "siameseim_vit",
                    "mae_vit>supervised_vit@0.5", "m3i_vit", "random_init"],
        "seeds": [0, 1, 2],
        "evals": ["linear", "low_label", "knn", "finetune", "dense", "zero_shot"],
        # fine-tuning for 200 steps: lr 4e-3 and light mixing beat the long-schedule defaults (full mixup/cutmix
        # cost 2-5 points top-1 at this budget; measured on supervised_vit and m3i_vit, README)
        "protocol": {"steps": 500, "batch_size": 64, "ft_steps": 200, "ft_batch": 64,
                     "ft_args": ["--lr", "4e-3", "--layer-decay", "0.9", "--drop-path", "0.05", "--crop-scale", "0.6",
                                 "--mix-prob", "0.3"]},
    },
}


# -- study entries -----------------------------------------------------------------------------------------
@dataclass
class Entry:
    label: str
    stages: List[Tuple[str, str]] = field(default_factory=list)    # (recipe name, recipe path)
    shares: List[float] = field(default_factory=list)              # cumulative switch points, last 1.0
    random_init: Optional[str] = None                              # recipe path of the untrained tower

    @property
    def slug(self) -> str:
        return re.sub(r"[^A-Za-z0-9_.-]+", "_", self.label.replace(">", "_then_").replace("@", "_at_"))

    def stage_steps(self, total: int) -> List[int]:
        bounds = [int(round(s * total)) for s in self.shares]
        steps = [b - a for a, b in zip([0] + bounds[:-1], bounds)]
        if any(s < 1 for s in steps):
            raise ValueError(f"entry '{self.label}': {total} steps leave a stage with none ({steps})")
        return steps


def recipe_path(name: str) -> str:
    if os.path.isfile(name):
        return os.path.abspath(name)
    for cand in (os.path.join(REPO, "models", name), os.path.join(REPO, "models", name + ".json")):
        if os.path.isfile(cand):
            return cand
    raise ValueError(f"no recipe '{name}' (a path, or a name in models/)")


def parse_entry(text: str, *, random_init_recipe: str = "supervised_vit") -> Entry:
    text = text.strip()
    if text == "random_init" or text.startswith("random_init:"):
        name = text.split(":", 1)[1] if ":" in text else random_init_recipe
        return Entry(label=text, random_init=recipe_path(name))
    head, _, at = text.partition("@")
    names = [n.strip() for n in head.split(">")]
    if any(not n for n in names):
        raise ValueError(f"entry '{text}': an empty stage")
    if at:
        try:
            points = [float(x) for x in at.split(",")]
        except ValueError:
            raise ValueError(f"entry '{text}': '@' takes the switch points, e.g. A>B@0.5") from None
        if len(points) != len(names) - 1:
            raise ValueError(f"entry '{text}': {len(names)} stages need {len(names) - 1} switch point(s)")
    else:
        points = [(i + 1) / len(names) for i in range(len(names) - 1)]
    shares = points + [1.0]
    if any(not 0.0 < x < 1.0 for x in points) or any(b <= a for a, b in zip(shares, shares[1:])):
        raise ValueError(f"entry '{text}': switch points must rise strictly inside (0, 1)")
    return Entry(label=text, stages=[(n, recipe_path(n)) for n in names], shares=shares)


# -- small utilities ---------------------------------------------------------------------------------------
def write_json(path: str, obj) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.tmp{os.getpid()}.{threading.get_ident()}"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=2)
    os.replace(tmp, path)


def read_json(path: str):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def now() -> str:
    return datetime.datetime.now().isoformat(timespec="seconds")


def flatten(d: dict, prefix: str = "") -> dict:
    """{"accuracy": {"20": 0.3}} -> {"accuracy.20": 0.3}: the table reads flat keys either way."""
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


def pick(metrics: dict, keys: Sequence[str]) -> Optional[float]:
    for k in keys:
        v = metrics.get(k)
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            return float(v)
    return None


def mean_sd(values: Sequence[float]) -> Tuple[float, float]:
    m = sum(values) / len(values)
    sd = math.sqrt(sum((v - m) ** 2 for v in values) / (len(values) - 1)) if len(values) > 1 else 0.0
    return m, sd


_HELP_CACHE: Dict[str, set] = {}
_HELP_LOCK = threading.Lock()


def script_flags(script: str) -> set:
    """The --flags an entry point advertises in its --help (so a study works while entry points evolve)."""
    with _HELP_LOCK:
        if script not in _HELP_CACHE:
            proc = subprocess.run([sys.executable, os.path.join(REPO, script), "--help"], capture_output=True,
                                  text=True, cwd=REPO, env=dict(os.environ, PYTHONPATH=REPO), timeout=300)
            _HELP_CACHE[script] = set(re.findall(r"(--[a-z][a-z0-9-]*)", proc.stdout))
        return _HELP_CACHE[script]


def has_text_tower(cfg) -> bool:
    if isinstance(cfg, dict):
        return cfg.get("type") == "text_tower" or any(has_text_tower(v) for v in cfg.values())
    if isinstance(cfg, list):
        return any(has_text_tower(v) for v in cfg)
    return False


@functools.lru_cache(maxsize=None)
def load_recipe(path: str) -> dict:
    """A recipe with its bases merged (read only: cached)."""
    from m3i_modular.config import _load_with_bases
    return _load_with_bases(path)


# -- running -----------------------------------------------------------------------------------------------
@dataclass
class Options:
    out: str
    protocol: Protocol
    evals: List[Evaluation]
    seeds: List[int]
    overrides: List[str]
    imports: List[str]
    threads: int
    jobs: int


class Study:
    def __init__(self, entries: List[Entry], opts: Options):
        self.entries, self.o = entries, opts
        self.lock = threading.Lock()
        self.failures: List[str] = []
        self.done_tasks = 0
        self.total_tasks = 0
        self.t0 = time.perf_counter()
        self.est_done = 0.0       # estimated CPU seconds of the tasks finished so far
        self.cpu_done = 0.0       # their measured CPU seconds
        self.est_total = 0.0

    # paths
    def cell_dir(self, e: Entry, seed: int) -> str:
        return os.path.join(self.o.out, "cells", e.slug, f"seed{seed}")

    def stage_dir(self, e: Entry, seed: int, i: int) -> str:
        name = "pretrain" if len(e.stages) == 1 else f"stage{i + 1}_{e.stages[i][0]}"
        return os.path.join(self.cell_dir(e, seed), name)

    def log(self, msg: str) -> None:
        with self.lock:
            print(msg, flush=True)

    # applicability
    def eval_status(self, ev: Evaluation, e: Entry) -> Optional[str]:
        """None when the evaluation runs for this entry, else why not ("missing ..." / "n/a ...")."""
        if not os.path.isfile(os.path.join(REPO, ev.script)):
            return f"missing: {ev.script} does not exist yet"
        if ev.needs == "text":
            cfg = load_recipe(e.random_init or e.stages[-1][1])
            if e.random_init or not has_text_tower(cfg):
                return "n/a: no trained text tower"
        return None

    # estimates (CPU seconds on one core, for the plan)
    @property
    def on_gpu(self) -> bool:
        return (self.o.protocol.device or "").startswith("cuda")

    def est_pretrain(self, e: Entry, i: int) -> float:
        p = self.o.protocol
        table = GPU_CPU_S_PER_STEP_B64 if self.on_gpu else CPU_S_PER_STEP_B64
        per = table.get(e.stages[i][0], max(table.values()))
        return CPU_S_START + per * e.stage_steps(p.steps)[i] * p.batch_size / 64.0

    def est_eval(self, ev: Evaluation) -> float:
        p = self.o.protocol
        if ev.name == "finetune":
            per = GPU_CPU_S_PER_STEP_B64 if self.on_gpu else CPU_S_PER_STEP_B64
            return CPU_S_START + 1.2 * per["supervised_vit"] * p.ft_steps * p.ft_batch / 64.0 + 2
        return ev.cpu_s

    def tasks(self, e: Entry, seed: int) -> List[Tuple[str, float, bool]]:
        """(what, estimated CPU s, done) of one cell, in order."""
        out = []
        for i in range(len(e.stages)):
            done = os.path.isfile(os.path.join(self.stage_dir(e, seed, i), "study_done.json"))
            out.append((f"pretrain {e.stages[i][0]}", self.est_pretrain(e, i), done))
        for ev in self.o.evals:
            if self.eval_status(ev, e) is None:
                done = os.path.isfile(os.path.join(self.cell_dir(e, seed), "eval", f"{ev.name}.json"))
                out.append((ev.name, self.est_eval(ev), done))
        return out

    def plan(self) -> str:
        p = self.o.protocol
        cells = [(e, s) for e in self.entries for s in self.o.seeds]
        todo_pre = done_pre = todo_ev = done_ev = 0
        est = 0.0
        for e, s in cells:
            for what, cost, done in self.tasks(e, s):
                is_pre = what.startswith("pretrain")
                if done:
                    done_pre += is_pre
                    done_ev += not is_pre
                else:
                    todo_pre += is_pre
                    todo_ev += not is_pre
                    est += cost
        self.est_total = est
        lines = [f"study: {len(self.entries)} entries x {len(self.o.seeds)} seeds = {len(cells)} cells; "
                 f"pretraining {p.steps} steps x batch {p.batch_size} each"
                 + (f" on {p.data[0]} (evaluated on {p.data[1]})" if p.data else "")]
        for e in self.entries:
            if e.random_init:
                lines.append(f"  {e.label:34s} untrained tower of {os.path.relpath(e.random_init, REPO)}")
            else:
                parts = [f"{n} {k} steps" for (n, _), k in zip(e.stages, e.stage_steps(p.steps))]
                lines.append(f"  {e.label:34s} " + " then ".join(parts))
        ev_notes = []
        for ev in self.o.evals:
            notes = sorted({self.eval_status(ev, e) or "runs" for e in self.entries})
            ev_notes.append(f"{ev.name} ({'; '.join(notes)})" if notes != ["runs"] else ev.name)
        lines.append("evaluations: " + ", ".join(ev_notes))
        lines.append(f"protocol: probe {p.probe_train}/{p.probe_val}, low-label {p.low_label}, k-NN k={p.knn_k}, "
                     f"fine-tune {p.ft_steps} x {p.ft_batch} {' '.join(p.ft_args)}, dense {p.dense_train}/{p.dense_val}, "
                     f"zero-shot {p.zero_shot_val}")
        lines.append(f"to do: {todo_pre} pretraining runs and {todo_ev} evaluations (done already: {done_pre} and "
                     f"{done_ev}); {self.o.jobs} job(s) at a time, {self.o.threads} thread(s) each")
        # each job is a main process plus its loader workers: all cores work once jobs x (threads + 1) >= cores
        cores = max(1, min(os.cpu_count() or 1, self.o.jobs * (self.o.threads + 1)))
        where = "the 16-core H100 machine's CPU timings" if self.on_gpu else "2-core CPU timings"
        lines.append(f"estimate: {est / 60:.0f} CPU-minutes, about {est / 60 / cores:.0f} min on {cores} busy "
                     f"core(s) (from {where} at batch 64; measured times print as tasks finish)")
        return "\n".join(lines)

    def run_proc(self, cmd: List[str], log_path: str, *, env_extra: Optional[dict] = None
                 ) -> Tuple[int, float, float, str]:
        """(exit code, wall s, CPU s of it and its reaped children, the last stderr lines)."""
        os.makedirs(os.path.dirname(log_path), exist_ok=True)
        env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
        env["OMP_NUM_THREADS"] = str(self.o.threads)
        env.update(env_extra or {})
        t0 = time.perf_counter()
        with open(log_path, "a") as log:
            log.write(f"\n# {now()} {' '.join(cmd)}\n")
            log.flush()
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=REPO, env=env)
            _, status, usage = os.wait4(proc.pid, 0)
            proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - t0
        cpu = usage.ru_utime + usage.ru_stime
        with open(log_path) as f:
            tail = f.read()[-2000:]
        return proc.returncode, wall, cpu, tail

    def progress(self, label: str, est: float, cpu: float, wall: float) -> None:
        with self.lock:
            self.done_tasks += 1
            self.est_done += est
            self.cpu_done += cpu
            elapsed = (time.perf_counter() - self.t0) / 60
            rate = elapsed / max(self.est_done, 1e-9)     # wall minutes per estimated CPU second so far
            left = max(self.est_total - self.est_done, 0.0) * rate
            print(f"[{self.done_tasks}/{self.total_tasks}] {label}: {wall:.1f} s wall, {cpu:.1f} s CPU "
                  f"(elapsed {elapsed:.1f} min, about {left:.0f} min left)", flush=True)

    # one cell: its stages, then its evaluations
    def run_cell(self, e: Entry, seed: int) -> None:
        p, cell = self.o.protocol, self.cell_dir(e, seed)
        os.makedirs(cell, exist_ok=True)
        final = None
        stage_records = []
        if not e.random_init:
            steps = e.stage_steps(p.steps)
            for i, (name, path) in enumerate(e.stages):
                sdir = self.stage_dir(e, seed, i)
                marker = os.path.join(sdir, "study_done.json")
                rec = read_json(marker)
                if rec is None:
                    rec = self.pretrain(e, seed, i, name, path, steps[i], sdir, final)
                    if rec is None:
                        return  # failed: its evaluations cannot run; the failure is recorded
                stage_records.append(rec)
                final = sdir
        results = {"entry": e.label, "seed": seed, "steps": p.steps, "batch_size": p.batch_size,
                   "stages": stage_records,
                   "pretrain_wall_s": round(sum(r["wall_s"] for r in stage_records), 2) if stage_records else None,
                   "pretrain_cpu_s": round(sum(r["cpu_s"] for r in stage_records), 2) if stage_records else None,
                   "evals": {}, "metrics": {}}
        for ev in self.o.evals:
            why = self.eval_status(ev, e)
            if why is not None:
                results["evals"][ev.name] = {"skipped": why}
                continue
            rec = self.evaluate(ev, e, seed, cell, final)
            if rec is None:
                continue
            results["evals"][ev.name] = rec
            if "metrics" in rec:
                for col, keys in ev.columns.items():
                    v = pick(rec["metrics"], keys)
                    if v is not None:
                        results["metrics"][col] = v
        write_json(os.path.join(cell, "results.json"), results)

    def pretrain(self, e, seed, i, name, path, steps, sdir, init) -> Optional[dict]:
        p = self.o.protocol
        sets = list(self.o.overrides)
        if p.data:
            from m3i_modular.eval.finetune import source_spec
            sets.append("data.sources=" + json.dumps([dict(source_spec(p.data[0]), weight=1.0)]))
        sets += [f"train.total_steps={steps}", f"train.batch_size={p.batch_size}", f"train.seed={seed}",
                 "train.progress=false"]
        if p.num_workers is not None:
            sets.append(f"train.num_workers={p.num_workers}")
        if p.device:
            sets.append(f"train.device={p.device}")
        cmd = [sys.executable, os.path.join(REPO, "pretrain.py"), "--config", path, "--output-dir", sdir, "--resume"]
        for s in sets:
            cmd += ["--set", s]
        for m in self.o.imports:
            cmd += ["--import", m]
        if init:
            cmd += ["--init-from", init]
        resumed = os.path.isdir(os.path.join(sdir, "checkpoints"))
        rc, wall, cpu, tail = self.run_proc(cmd, os.path.join(self.cell_dir(e, seed), "logs", f"pretrain{i + 1}.log"))
        label = f"{e.label} seed {seed} pretrain {name}"
        self.progress(label, self.est_pretrain(e, i), cpu, wall)
        if rc != 0:
            self.fail(label, rc, tail)
            return None
        rec = {"recipe": name, "steps": steps, "wall_s": round(wall, 2), "cpu_s": round(cpu, 2),
               "resumed": resumed, "init_from": init, "dir": os.path.relpath(sdir, self.o.out), "finished": now()}
        write_json(os.path.join(sdir, "study_done.json"), rec)
        return rec

    def evaluate(self, ev: Evaluation, e: Entry, seed: int, cell: str, final: Optional[str]) -> Optional[dict]:
        marker = os.path.join(cell, "eval", f"{ev.name}.json")
        rec = read_json(marker)
        if rec is not None:
            return rec
        p = self.o.protocol
        flags = script_flags(ev.script)
        cmd = [sys.executable, os.path.join(REPO, ev.script)]
        if e.random_init:  # the untrained tower of the recipe as the study pretrains it (same --set)
            cmd += ["--random-init", "--config", e.random_init]
            for s in self.o.overrides + [f"train.seed={seed}"]:
                cmd += ["--set", s]
        else:
            cmd += ["--checkpoint", final]
        cmd += ev.args(p, cell)
        optional = [("--seed", str(seed)), ("--device", p.device), ("--num-workers", p.num_workers)]
        if p.data:
            optional += [("--train-data", p.data[0]), ("--val-data", p.data[1])]
        for flag, value in optional:
            if value is None:
                continue
            if flag in flags:
                cmd += [flag, str(value)]
            elif flag in ("--train-data", "--val-data"):
                self.fail(f"{e.label} seed {seed} {ev.name}", 2, f"{ev.script} takes no {flag}")
                return None
        for m in self.o.imports:
            cmd += ["--import", m]
        raw = os.path.join(cell, "eval", f".{ev.name}.out.json")
        cmd += ["--output", raw]
        rc, wall, cpu, tail = self.run_proc(cmd, os.path.join(cell, "logs", f"{ev.name}.log"))
        label = f"{e.label} seed {seed} {ev.name}"
        self.progress(label, self.est_eval(ev), cpu, wall)
        if rc == 2 and "not applicable" in tail.lower():
            why = [ln for ln in tail.strip().splitlines() if "not applicable" in ln.lower()][-1]
            rec = {"not_applicable": why.strip(), "finished": now()}
            write_json(marker, rec)
            return rec
        out = read_json(raw)
        if rc != 0 or not isinstance(out, dict):
            self.fail(label, rc, tail)
            return None
        rec = {"metrics": flatten(out), "wall_s": round(wall, 2), "cpu_s": round(cpu, 2), "finished": now()}
        write_json(marker, rec)
        os.remove(raw)
        return rec

    def fail(self, label: str, rc: int, tail: str) -> None:
        last = tail.strip().splitlines()[-1] if tail.strip() else ""
        with self.lock:
            self.failures.append(f"{label}: exit {rc}: {last}")
            print(f"FAILED {label} (exit {rc}): {last}", flush=True)

    def run(self) -> int:
        cells = [(e, s) for e in self.entries for s in self.o.seeds]
        self.total_tasks = sum(1 for e, s in cells for t in self.tasks(e, s) if not t[2])
        # longest cells first: the last wave of a parallel study is then short
        cells.sort(key=lambda c: -sum(t[1] for t in self.tasks(*c) if not t[2]))
        if self.o.jobs == 1:
            for c in cells:
                self.run_cell(*c)
        else:
            with futures.ThreadPoolExecutor(self.o.jobs) as pool:
                for f in [pool.submit(self.run_cell, *c) for c in cells]:
                    f.result()
        return 1 if self.failures else 0


# -- the report --------------------------------------------------------------------------------------------
def collect(out: str, entries: List[Entry], seeds: List[int], evals: List[Evaluation]) -> dict:
    rows = {}
    for e in entries:
        cells = [read_json(os.path.join(out, "cells", e.slug, f"seed{s}", "results.json")) for s in seeds]
        cells = [c for c in cells if c]
        row = {"seeds": [c["seed"] for c in cells], "metrics": {}}
        walls = [c["pretrain_wall_s"] for c in cells if c.get("pretrain_wall_s") is not None]
        if walls:
            m, sd = mean_sd(walls)
            row["pretrain_wall_s"] = {"mean": m, "sd": sd, "n": len(walls)}
        for ev in evals:
            for col in ev.columns:
                vals = [c["metrics"][col] for c in cells if col in c.get("metrics", {})]
                status = {c["evals"].get(ev.name, {}).get("skipped", "") for c in cells}
                na = any("not_applicable" in c["evals"].get(ev.name, {}) for c in cells)
                if vals:
                    m, sd = mean_sd(vals)
                    row["metrics"][col] = {"mean": m, "sd": sd, "n": len(vals), "values": vals}
                elif na or any(s.startswith("n/a") for s in status):
                    row["metrics"][col] = "n/a"
                elif any(s.startswith("missing") for s in status):
                    row["metrics"][col] = "missing"
        rows[e.label] = row
    return rows


def markdown(rows: dict, evals: List[Evaluation], header: str) -> str:
    every = [c for ev in evals for c in ev.columns]
    cols = [c for c in every if any(isinstance(r["metrics"].get(c), dict) or r["metrics"].get(c) == "n/a"
                                    for r in rows.values())]
    dropped = [COLUMN_TITLES.get(c, c) for c in every if c not in cols]
    titles = ["recipe", "pretrain (min)"] + [COLUMN_TITLES.get(c, c) for c in cols]
    lines = [header, "", "| " + " | ".join(titles) + " |", "|" + "---|" * len(titles)]
    for label, r in rows.items():
        w = r.get("pretrain_wall_s")
        cells = [f"`{label}`", ("–" if not w else f"{w['mean'] / 60:.1f}"
                                + (f" ± {w['sd'] / 60:.1f}" if w["n"] > 1 else ""))]
        for c in cols:
            v = r["metrics"].get(c)
            if isinstance(v, dict):
                sd = f" ± {100 * v['sd']:.1f}" if v["n"] > 1 else ""
                cells.append(f"{100 * v['mean']:.1f}{sd}")
            else:
                cells.append("n/a" if v == "n/a" else "–")
        lines.append("| " + " | ".join(cells) + " |")
    if dropped:
        lines += ["", f"No result yet (entry point missing or not run): {', '.join(dropped)}."]
    return "\n".join(lines) + "\n"


def chart(rows: dict, evals: List[Evaluation], path: str) -> Optional[str]:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "no chart: matplotlib is not installed (pip install matplotlib)"
    cols = [c for ev in evals for c in ev.columns if any(isinstance(r["metrics"].get(c), dict) for r in rows.values())]
    if not cols:
        return "no chart: no metric yet"
    labels = list(rows)
    fig, axes = plt.subplots(1, len(cols), figsize=(3.2 * len(cols), 0.35 * len(labels) + 1.8), sharey=True,
                             squeeze=False)
    for ax, col in zip(axes[0], cols):
        means, sds = [], []
        for lb in labels:
            v = rows[lb]["metrics"].get(col)
            means.append(100 * v["mean"] if isinstance(v, dict) else 0.0)
            sds.append(100 * v["sd"] if isinstance(v, dict) else 0.0)
        ax.barh(range(len(labels)), means, xerr=sds, color="#4c72b0", ecolor="#333333", capsize=2)
        ax.set_title(COLUMN_TITLES.get(col, col), fontsize=9)
        ax.set_yticks(range(len(labels)))
        ax.set_yticklabels(labels, fontsize=8)
        ax.tick_params(axis="x", labelsize=8)
        ax.grid(axis="x", alpha=0.3)
    axes[0][0].invert_yaxis()  # the table's order, top down (the axes share y: invert once)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return None


def report(out: str, entries: List[Entry], opts: Options) -> None:
    p = opts.protocol
    rows = collect(out, entries, opts.seeds, opts.evals)
    header = (f"Study `{os.path.basename(os.path.abspath(out))}`: {p.steps} pretraining steps x batch {p.batch_size}, "
              f"seeds {', '.join(map(str, opts.seeds))}; mean ± sd over seeds (%, pretraining time in minutes).")
    md = markdown(rows, opts.evals, header)
    with open(os.path.join(out, "results.md"), "w") as f:
        f.write(md)
    write_json(os.path.join(out, "results.json"), {"protocol": p.__dict__, "seeds": opts.seeds, "rows": rows})
    note = chart(rows, opts.evals, os.path.join(out, "results.png"))
    print(md)
    print(note or f"chart: {os.path.join(out, 'results.png')}")


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
    for name, default in (("probe-train", None), ("probe-val", None), ("low-label", None), ("knn-k", None),
                          ("ft-steps", None), ("ft-batch", None), ("dense-train", None), ("dense-val", None),
                          ("zero-shot-val", None)):
        p.add_argument(f"--{name}", type=int, default=default, help=f"protocol: {name} (default: the study's)")
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
    for key in ("steps", "batch_size", "probe_train", "probe_val", "low_label", "knn_k", "ft_steps", "ft_batch",
                "dense_train", "dense_val", "zero_shot_val"):
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
    cores = os.cpu_count() or 1
    jobs = max(1, args.jobs or cores)
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
    print(study.plan(), flush=True)
    if args.plan:
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
    rc = study.run()
    report(opts.out, entries, opts)
    print(f"total: {(time.perf_counter() - study.t0) / 60:.1f} min wall", flush=True)
    if study.failures:
        print(f"{len(study.failures)} task(s) failed (rerun the same command to retry them):", file=sys.stderr)
        for f in study.failures:
            print(f"  {f}", file=sys.stderr)
    return rc


if __name__ == "__main__":
    sys.exit(main())
