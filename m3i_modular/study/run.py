"""Running a study (scripts/compare_recipes.py): each cell (entry x seed) pretrains its stages, then runs every
evaluation that applies, each as a subprocess with the evaluation entry points' shared contract. Finished work
leaves a marker and is never recomputed; whether an evaluation applies is asked once per (evaluation, recipe)
with the entry point's own --check and kept in <out>/checks/."""
import concurrent.futures as futures
import datetime
import json
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

from .plan import CPU_S_PER_STEP_B64, CPU_S_START, GPU_CPU_S_PER_STEP_B64, REPO, Entry, Evaluation, Protocol, slug


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
        self.check_locks: Dict[str, threading.Lock] = {}
        self.failures: List[str] = []
        self.done_tasks = 0
        self.total_tasks = 0
        self.t0 = time.perf_counter()
        self.est_done = 0.0       # estimated CPU seconds of the tasks finished so far
        self.est_total = 0.0

    # paths
    def cell_dir(self, e: Entry, seed: int) -> str:
        return os.path.join(self.o.out, "cells", e.slug, f"seed{seed}")

    def stage_dir(self, e: Entry, seed: int, i: int) -> str:
        name = "pretrain" if len(e.stages) == 1 else f"stage{i + 1}_{slug(e.stages[i][0])}"
        return os.path.join(self.cell_dir(e, seed), name)

    def check_path(self, ev: Evaluation, e: Entry) -> str:
        recipe = os.path.splitext(os.path.relpath(e.final_recipe, REPO))[0]
        return os.path.join(self.o.out, "checks", f"{ev.name}__{slug(recipe)}.json")

    # applicability
    def common_flags(self) -> List[str]:
        """--set (every recipe), --import and --train-data / --val-data, as every subprocess gets them."""
        out: List[str] = []
        for m in self.o.imports:
            out += ["--import", m]
        if self.o.protocol.data:
            out += ["--train-data", self.o.protocol.data[0], "--val-data", self.o.protocol.data[1]]
        return out

    def eval_status(self, ev: Evaluation, e: Entry, *, ask: bool = True) -> Optional[str]:
        """None when the evaluation runs for this entry, else why not ("missing: ..." / "n/a: ..."); "unknown"
        when it was not asked yet and ask is False (the plan). Asked with the entry point's --check on the
        entry's recipe at random init (applicability depends on the model's parts and the data, not on weights)."""
        if not os.path.isfile(os.path.join(REPO, ev.script)):
            return f"missing: {ev.script} does not exist yet"
        path = self.check_path(ev, e)
        with self.lock:
            lock = self.check_locks.setdefault(path, threading.Lock())
        with lock:  # one check per (evaluation, recipe), whatever the number of jobs
            rec = read_json(path)
            if rec is None:
                if not ask:
                    return "unknown"
                cmd = [sys.executable, os.path.join(REPO, ev.script), "--random-init", "--config", e.final_recipe,
                       "--check", *self.common_flags()]
                for s in self.o.overrides:
                    cmd += ["--set", s]
                env = dict(self.env(), OMP_NUM_THREADS="1")
                proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, env=env, timeout=900)
                lines = proc.stdout.strip().splitlines()
                try:
                    rec = json.loads(lines[-1]) if proc.returncode == 0 and lines else None
                except ValueError:
                    rec = None
                if not isinstance(rec, dict) or "applicable" not in rec:
                    err = (proc.stderr.strip().splitlines() or [""])[-1]
                    return f"failed: {ev.script} --check exit {proc.returncode}: {err}"
                write_json(path, rec)
        return None if rec["applicable"] else f"n/a: {rec.get('reason', '')}"

    def check_all(self) -> None:
        """Ask every (evaluation, recipe) not asked yet, `jobs` at a time."""
        seen, todo = set(), []
        for e in self.entries:
            for ev in self.o.evals:
                key = self.check_path(ev, e)
                if key not in seen:
                    seen.add(key)
                    todo.append((ev, e))
        with futures.ThreadPoolExecutor(max(1, self.o.jobs)) as pool:
            list(pool.map(lambda t: self.eval_status(*t), todo))

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
        """(what, estimated CPU s, done) of one cell, in order (evaluations not yet checked count as runs)."""
        out = []
        for i in range(len(e.stages)):
            done = os.path.isfile(os.path.join(self.stage_dir(e, seed, i), "study_done.json"))
            out.append((f"pretrain {e.stages[i][0]}", self.est_pretrain(e, i), done))
        for ev in self.o.evals:
            if self.eval_status(ev, e, ask=False) in (None, "unknown"):
                done = os.path.isfile(os.path.join(self.cell_dir(e, seed), "eval", f"{ev.name}.json"))
                out.append((ev.name, self.est_eval(ev), done))
        return out

    def plan(self) -> str:
        p = self.o.protocol
        cells = [(e, s) for e in self.entries for s in self.o.seeds]
        count = {"pre": [0, 0], "ev": [0, 0]}  # [to do, done]
        est = 0.0
        for e, s in cells:
            for what, cost, done in self.tasks(e, s):
                count["pre" if what.startswith("pretrain") else "ev"][1 if done else 0] += 1
                est += 0.0 if done else cost
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
        ev_notes, unknown = [], False
        for ev in self.o.evals:
            status = {self.eval_status(ev, e, ask=False) or "runs" for e in self.entries}
            unknown |= "unknown" in status
            notes = sorted(status - {"unknown"})
            ev_notes.append(f"{ev.name} ({'; '.join(notes)})" if notes not in ([], ["runs"]) else ev.name)
        lines.append("evaluations: " + ", ".join(ev_notes)
                     + (" (where each applies: its --check, asked when the study runs)" if unknown else ""))
        lines.append(f"protocol: probe {p.probe_train}/{p.probe_val}, low-label {p.low_label_per_class} per class, "
                     f"k-NN k={p.knn_k}, fine-tune {p.ft_steps} x {p.ft_batch} {' '.join(p.ft_args)}, dense "
                     f"{p.dense_train}/{p.dense_val}, zero-shot {p.zero_shot_val}")
        lines.append(f"to do: {count['pre'][0]} pretraining runs and {count['ev'][0]} evaluations (done already: "
                     f"{count['pre'][1]} and {count['ev'][1]}); {self.o.jobs} job(s) at a time, {self.o.threads} "
                     f"thread(s) each")
        # each job is a main process plus its loader workers: all cores work once jobs x (threads + 1) >= cores
        cores = max(1, min(os.cpu_count() or 1, self.o.jobs * (self.o.threads + 1)))
        where = "the 16-core H100 machine's CPU timings" if self.on_gpu else "2-core CPU timings"
        lines.append(f"estimate: {est / 60:.0f} CPU-minutes, about {est / 60 / cores:.0f} min on {cores} busy "
                     f"core(s) (from {where} at batch 64; measured times print as tasks finish)")
        return "\n".join(lines)

    def env(self) -> dict:
        env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
        env["OMP_NUM_THREADS"] = str(self.o.threads)
        return env

    def run_proc(self, cmd: List[str], log_path: str) -> Tuple[int, float, float, str]:
        """(exit code, wall s, CPU s of it and its reaped children, the last stderr lines)."""
        os.makedirs(os.path.dirname(log_path), exist_ok=True)
        t0 = time.perf_counter()
        with open(log_path, "a") as log:
            log.write(f"\n# {now()} {' '.join(cmd)}\n")
            log.flush()
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=REPO, env=self.env())
            _, status, usage = os.wait4(proc.pid, 0)
            proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - t0
        with open(log_path) as f:
            tail = f.read()[-2000:]
        return proc.returncode, wall, usage.ru_utime + usage.ru_stime, tail

    def progress(self, label: str, est: float, cpu: float, wall: float) -> None:
        with self.lock:
            self.done_tasks += 1
            self.est_done += est
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
                rec = read_json(os.path.join(sdir, "study_done.json"))
                if rec is None:
                    rec = self.pretrain(e, seed, i, name, path, steps[i], sdir, final)
                    if rec is None:
                        return  # failed: its evaluations cannot run; the failure is recorded
                stage_records.append(rec)
                final = sdir
        walls = [r["wall_s"] for r in stage_records]
        results = {"entry": e.label, "seed": seed, "steps": p.steps, "batch_size": p.batch_size,
                   "stages": stage_records, "pretrain_wall_s": round(sum(walls), 2) if walls else None,
                   "pretrain_cpu_s": round(sum(r["cpu_s"] for r in stage_records), 2) if walls else None,
                   "evals": {}, "metrics": {}}
        for ev in self.o.evals:
            why = self.eval_status(ev, e)
            if why is not None:
                if why.startswith("failed"):
                    self.fail(f"{e.label} {ev.name}", 2, why)
                results["evals"][ev.name] = {"skipped": why}
                continue
            rec = self.evaluate(ev, e, seed, cell, final)
            if rec is None:
                continue
            results["evals"][ev.name] = rec
            for col, key in ev.columns.items():
                v = rec["metrics"].get(key)
                if isinstance(v, (int, float)) and not isinstance(v, bool):
                    results["metrics"][col] = float(v)
        write_json(os.path.join(cell, "results.json"), results)

    def pretrain(self, e, seed, i, name, path, steps, sdir, init) -> Optional[dict]:
        p = self.o.protocol
        sets = list(self.o.overrides)
        if p.data:
            from m3i_modular.eval.sources import source_config
            sets.append("data.sources=" + json.dumps([dict(source_config(p.data[0], flag="--data"), weight=1.0)]))
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
        cmd = [sys.executable, os.path.join(REPO, ev.script)]
        if e.random_init:  # the untrained tower of the recipe as the study pretrains it (same --set)
            cmd += ["--random-init", "--config", e.random_init]
            for s in self.o.overrides + [f"train.seed={seed}"]:
                cmd += ["--set", s]
        else:
            cmd += ["--checkpoint", final]
        cmd += ev.args(p, cell) + ["--seed", str(seed)] + self.common_flags()
        for flag, value in (("--device", p.device), ("--num-workers", p.num_workers)):
            if value is not None:
                cmd += [flag, str(value)]
        raw = os.path.join(cell, "eval", f".{ev.name}.out.json")
        cmd += ["--output", raw]
        rc, wall, cpu, tail = self.run_proc(cmd, os.path.join(cell, "logs", f"{ev.name}.log"))
        label = f"{e.label} seed {seed} {ev.name}"
        self.progress(label, self.est_eval(ev), cpu, wall)
        out = read_json(raw)
        if rc != 0 or not isinstance(out, dict):
            self.fail(label, rc, tail)
            return None
        rec = {"metrics": out, "wall_s": round(wall, 2), "cpu_s": round(cpu, 2), "finished": now()}
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
        with futures.ThreadPoolExecutor(max(1, self.o.jobs)) as pool:
            for f in [pool.submit(self.run_cell, *c) for c in cells]:
                f.result()
        return 1 if self.failures else 0
