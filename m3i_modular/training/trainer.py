"""The training loop. `Trainer.train` reads like a training script:

    for each step, until train.total_steps (or --stop-at, or a signal):
        set the learning rate for the step
        metrics = train_step(the step's grad_accum micro-batches)    # forward, backward, clip, update
        model.after_optimizer_step(step, total_steps)                # EMA towers update here
        at step 1 and every log_every steps: log (losses averaged over ranks, throughput, skips, monitors)
        every save_every steps, every save_every_minutes, and at the last step run: save a checkpoint

One process or torchrun DDP: the whole PretrainModel is wrapped once and called once per micro-batch
(no_sync under accumulation); autocast in bf16 / fp16 (fp16 with a gradient scaler; "auto" resolves in
precision.py). Every place where the host waits for the device is marked "sync:" with why; the loss is read
only at logging steps.

A step whose loss or gradients are not finite is skipped (no update, counted in `skipped_steps`); after
train.max_bad_steps of them in a row the run stops (RunStopped) and keeps its last good checkpoint. SIGINT and
SIGTERM stop the loop after the current step with a checkpoint (`stop_signal` says which); a second Ctrl-C
exits at once. Under DDP the ranks agree on skipping, stopping and saving by time in one small all-reduce per
step, so they always take the same path.
"""
import contextlib
import os
import sys
import time
from typing import Dict, Iterable, Iterator, Optional

import torch
import torch.distributed as dist

from . import checkpoint as ckpt
from . import loggers as _loggers  # noqa: F401  (registration)
from ..runtime import parallel
from . import sharded
from .checkpoint import rng_state, seed_everything, set_rng_state
from ..data.skips import SkipTally
from ..runtime.distributed import DistEnv, all_mean, gather_bytes
from ..errors import RunStopped
from ..runtime.precision import resolve_precision
from ..registry import LOGGERS, build, config_path
from ..recipe.sections import TrainConfig
from .signals import StopSignals, ignore_signals

AUTOCAST_DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def move(batch, device: torch.device):
    """Tensors of a (nested) batch dict to `device`, without waiting for the copies (pinned memory)."""
    if torch.is_tensor(batch):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: move(v, device) for k, v in batch.items()}
    return batch


class Window:
    """Time between two logged steps, and how much of it went into waiting for data."""

    def __init__(self):
        self.start, self.data, self.steps = time.perf_counter(), 0.0, 0

    def elapsed(self) -> float:
        return max(time.perf_counter() - self.start, 1e-9)


class Trainer:
    def __init__(self, *, model: torch.nn.Module, optimizer: torch.optim.Optimizer, schedule, dataset,
                 collate, train: TrainConfig, env: DistEnv, config: dict, output_dir: str,
                 extra_files: Optional[Dict[str, str]] = None, monitors: Optional[list] = None):
        """`monitors`: callables `monitor(model, step=, device=, dtype=) -> {name: value}`, run on rank 0 at
        logging steps (eval/monitor.py). `extra_files`: name -> path copied into every checkpoint."""
        self.raw, self.opt, self.schedule, self.dataset, self.collate = model, optimizer, schedule, dataset, collate
        self.tc, self.env, self.config, self.out = train, env, config, output_dir
        self.extra_files = extra_files or {}
        self.monitors = monitors or []
        self.flops = None          # flops.StepFlops, set by the entry point: FLOPs/step, FLOP/s and MFU logged
        self.step = 0              # optimizer steps taken
        self.saved_step = -1       # the step of the newest checkpoint
        # unreadable samples the data pipeline replaced: logged, and past data.max_skip_share the run stops
        self.skips = SkipTally(getattr(dataset, "max_skip_share", 1.0))
        self.ckpt_root = os.path.join(output_dir, "checkpoints")
        self.raw.to(env.device)
        # what the loop calls: compiled blocks, activation checkpointing, DDP or FSDP2 (parallel.py)
        self.precision, self.precision_reason = resolve_precision(train.precision, env.device.type)
        self.model = parallel.wrap_model(self.raw, env, train, optimizer, precision=self.precision)
        self.autocast_dtype = AUTOCAST_DTYPES[self.precision]
        self.scaler = torch.amp.GradScaler(env.device.type, enabled=self.precision == "fp16")
        self.loggers: Optional[list] = None  # opened when train() starts: nothing is written before
        self.last_checkpoint: Optional[str] = None
        self.skipped_steps = 0     # steps with a non-finite loss or gradients (no update), over the run
        self.bad_in_a_row = 0
        self.step_was_bad = False  # the last train_step skipped its update (every rank agrees)
        self.stop_signal = 0       # the signal the ranks agreed to stop on after this step (0: none)
        self.save_by_time = False  # train.save_every_minutes have passed since the last save (rank 0's clock)
        self.signals = StopSignals()  # a signal this process received, agreed on in _agree
        self._last_save = time.monotonic()

    # -- the loop ---------------------------------------------------------------------------------------
    def train(self, stop_at: Optional[int] = None) -> Dict[str, float]:
        """Train to train.total_steps, or stop after step `stop_at` (a preemptible job's time slice) with a
        checkpoint there; the schedules still read total_steps, so a resumed run continues exactly.
        Returns the last logged record."""
        end = self.tc.total_steps if stop_at is None else min(stop_at, self.tc.total_steps)
        self._open_loggers()
        bar = self._progress_bar()
        try:
            with self.signals.installed():
                last = self._loop(end, bar)
                if self.saved_step != self.step:
                    self.save()  # always leave a checkpoint at the last step run
        finally:
            bar.close()
            for lg in self.loggers:
                lg.close()
        return last

    def _loop(self, end: int, bar) -> Dict[str, float]:
        tc = self.tc
        batches = iter(self._loader())
        window, last = Window(), {}
        self.model.train()
        while self.step < end:
            lr_factor = self.schedule.apply(self.opt, self.step)
            metrics = self.train_step(self._micro_batches(batches, window))
            self.step += 1
            if not self.step_was_bad:
                self.raw.after_optimizer_step(self.step, tc.total_steps)
            window.steps += 1
            if self.log_due():
                last = self.log(metrics, lr_factor, window)
                window = Window()
                bar.set_postfix(loss=f"{last['loss']:.4f}")
            bar.update(1)
            if self.bad_in_a_row >= tc.max_bad_steps:
                raise RunStopped(self._bad_streak_message(metrics))
            if self.save_due():
                self.save()
            if self.stop_signal:
                break
        return last

    def train_step(self, micro_batches: Iterable[dict]) -> Dict[str, torch.Tensor]:
        """One optimizer step over train.grad_accum micro-batches (on the device): forward under autocast,
        backward (DDP all-reduces gradients after the last micro-batch only), unscale and clip, the update --
        unless the loss or the gradients are not finite on some rank: then no update (step_was_bad).
        Returns the model's outputs averaged over the micro-batches: detached tensors on the device, which
        the caller reads only when it logs."""
        n = self.tc.grad_accum
        sums: Dict[str, torch.Tensor] = {}
        for i, batch in enumerate(micro_batches):
            with self._no_sync(last=i == n - 1):
                with self._autocast():
                    out = self.model(batch)
                self.scaler.scale(out["loss"] / n).backward()
            for k, v in out.items():
                v = v.detach().float()
                sums[k] = sums[k] + v / n if k in sums else v / n
        norm = self._unscale_and_clip()
        bad = ~torch.isfinite(sums["loss"])
        if norm is not None:
            bad = bad | ~torch.isfinite(norm)
        self._agree(bad)
        if self.step_was_bad:  # nothing of this step reaches the weights (nor the next checkpoint)
            self.opt.zero_grad(set_to_none=True)
            if self.scaler.is_enabled():
                self.scaler.update()  # fp16: lower the scale, as for an overflow
            self.skipped_steps += 1
            self.bad_in_a_row += 1
            return sums
        self.bad_in_a_row = 0
        # fp16 only, inside GradScaler: sync: step() reads whether the gradients overflowed to skip the update
        self.scaler.step(self.opt)
        self.scaler.update()
        self.opt.zero_grad(set_to_none=True)
        return sums

    def _unscale_and_clip(self) -> Optional[torch.Tensor]:
        """The gradients' total norm, after clipping them to train.clip_grad when it is set. None under fp16:
        its GradScaler skips the steps whose gradients overflow by itself (and lowers the scale)."""
        fp16 = self.scaler.is_enabled()
        if fp16 or self.tc.clip_grad > 0:
            self.scaler.unscale_(self.opt)
        grads = [p for p in self.raw.parameters() if p.grad is not None]
        if not grads:
            return None
        if self.tc.clip_grad > 0:
            norm = torch.nn.utils.clip_grad_norm_(grads, self.tc.clip_grad)
        else:
            norm = torch.nn.utils.get_total_norm([p.grad for p in grads])
        if hasattr(norm, "full_tensor"):  # FSDP2: a norm over sharded gradients is a DTensor; the whole one
            norm = norm.full_tensor()
        return None if fp16 else norm

    def _agree(self, bad: torch.Tensor) -> None:
        """sync: the step's one wait for the device, to read whether its loss and gradients are finite. Under
        DDP the same small all-reduce (max over ranks) carries whether a signal reached a rank and whether rank
        0's clock says to save, so every rank skips, stops and saves at the same step."""
        due = (self.env.is_main and self.tc.save_every_minutes > 0
               and time.monotonic() - self._last_save >= 60.0 * self.tc.save_every_minutes)
        flags = torch.stack([bad.float().reshape(()), torch.tensor(float(self.signals.received), device=bad.device),
                             torch.tensor(float(due), device=bad.device)])
        if self.env.world > 1 and dist.is_initialized():
            dist.all_reduce(flags, op=dist.ReduceOp.MAX)
        bad_any, sig, due_any = flags.tolist()
        self.step_was_bad, self.stop_signal, self.save_by_time = bad_any > 0, int(sig), due_any > 0

    def _bad_streak_message(self, metrics: Dict[str, torch.Tensor]) -> str:
        kept = (f"its last good checkpoint is {self.last_checkpoint} (step {self.saved_step})"
                if self.last_checkpoint else "no checkpoint was written yet")
        return (f"{self.bad_in_a_row} steps in a row (to step {self.step}) had a non-finite loss or gradients "
                f"(loss {float(metrics['loss'])}); each was skipped and the run stopped (train.max_bad_steps "
                f"{self.tc.max_bad_steps}); {kept}. Lower optim.lr, set train.clip_grad or check the data, then "
                f"--resume")

    def _micro_batches(self, batches: Iterator[dict], window: Window) -> Iterator[dict]:
        """The step's grad_accum batches, fetched one at a time as train_step asks for them."""
        for _ in range(self.tc.grad_accum):
            t0 = time.perf_counter()
            batch = next(batches)
            self.skips.add(batch)  # counted on the host copy: no device sync
            batch = move(batch, self.env.device)
            window.data += time.perf_counter() - t0
            yield batch

    def _no_sync(self, *, last: bool):
        return parallel.no_sync(self.model, last=last)

    def _autocast(self):
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.env.device.type, dtype=self.autocast_dtype)

    def _loader(self):
        from torch.utils.data import DataLoader
        from ..data.sampling import PositionSampler
        per_rank = self.tc.batch_size // (self.env.world * self.tc.grad_accum)
        sampler = PositionSampler(start=self.step * self.tc.batch_size, rank=self.env.rank,
                                  world_size=self.env.world)
        nw = self.tc.num_workers
        # A private generator: creating the loader must not draw from the global RNG (exact resume).
        return DataLoader(self.dataset, batch_size=per_rank, sampler=sampler, num_workers=nw,
                          collate_fn=self.collate, generator=torch.Generator(), persistent_workers=nw > 0,
                          worker_init_fn=ignore_signals if nw > 0 else None,
                          pin_memory=self.env.device.type == "cuda", prefetch_factor=4 if nw > 0 else None)

    # -- logging ----------------------------------------------------------------------------------------
    def log_due(self) -> bool:
        return self.step == 1 or self._regular_log()

    def _regular_log(self) -> bool:
        return self.step % self.tc.log_every == 0 or self.step == self.tc.total_steps

    def _open_loggers(self) -> None:
        if self.loggers is not None:
            return
        self.loggers = []
        if self.env.is_main:
            for i, name in enumerate(self.tc.loggers):
                with config_path(f"train.loggers[{i}]", absolute=True):
                    self.loggers.append(build(LOGGERS, {"type": name}, output_dir=self.out))

    def log(self, metrics: Dict[str, torch.Tensor], lr_factor: float, window: Window) -> Dict[str, float]:
        """One metrics.jsonl record. Every rank calls it: the averages over ranks and the skip tally are
        collectives; rank 0 runs the monitors and writes."""
        elapsed = window.elapsed()
        rec = {"step": self.step,
               **all_mean(metrics),  # sync: reads the step's losses (an all-reduce under DDP)
               "lr": self.opt.param_groups[0]["base_lr"] * lr_factor,
               "samples_per_s": window.steps * self.tc.batch_size / elapsed,
               "data_time_share": window.data / elapsed, **self.skips.report(),
               "skipped_steps": self.skipped_steps,
               **(self.flops.rates(window.steps, elapsed) if self.flops is not None else {})}
        if self.env.is_main:
            if self._regular_log():  # not the extra log of step 1: monitors may be costly
                rec.update(self.run_monitors())
            for lg in self.loggers:
                lg.log(rec)
        return rec

    def run_monitors(self) -> Dict[str, float]:
        """What the monitors measure on the online model now (k-NN accuracy; reading their results back is a
        sync, at logging steps only). They run under a forked RNG, so that a monitor never changes the training
        run's random streams (nor its exact resume)."""
        out: Dict[str, float] = {}
        if not self.monitors:
            return out
        devices = [self.env.device] if self.env.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            for mon in self.monitors:
                out.update(mon(self.raw, step=self.step, device=self.env.device, dtype=self.autocast_dtype))
        return out

    def _progress_bar(self):
        if not (self.env.is_main and self.tc.progress):
            return _NoBar()
        from tqdm import tqdm
        return tqdm(total=self.tc.total_steps, initial=self.step, desc="train", mininterval=2.0, file=sys.stderr)

    # -- checkpoints ------------------------------------------------------------------------------------
    def save_due(self) -> bool:
        if self.step_was_bad:
            return False  # the weights are those of the last good step: nothing new to keep
        return bool(self.tc.save_every) and self.step % self.tc.save_every == 0 or self.save_by_time

    def save(self) -> None:
        """A checkpoint of this step (sync: the weights are copied to the host to be written). Every rank
        calls it: the RNG states and skip counts are gathered."""
        self.saved_step = self.step
        self._last_save = time.monotonic()
        rngs = torch.stack(gather_bytes(rng_state()))
        skips = self.skips.state()
        state = {"step": torch.tensor(self.step), "consumed": torch.tensor(self.step * self.tc.batch_size),
                 "rng": rngs, "scaler": self.scaler.state_dict(), "skips": skips,
                 "skipped_steps": torch.tensor(self.skipped_steps)}
        meta = ckpt.run_metadata(self.env.world, self.precision, self.precision_reason)
        if self.tc.parallel == "fsdp":  # every rank writes its shards (sharded.py)
            sharded.save_checkpoint(self.ckpt_root, self.step, self.raw, self.opt, state, config=self.config,
                                    meta=meta, is_main=self.env.is_main, extra_files=self.extra_files,
                                    keep_last=self.tc.keep_last)
        elif self.env.is_main:
            ckpt.save_checkpoint(
                self.ckpt_root, self.step,
                {"model": self.raw.state_dict(), "optimizer": self.opt.state_dict(), "trainer": state},
                config=self.config, meta=meta, extra_files=self.extra_files, keep_last=self.tc.keep_last)
        if self.env.world > 1:
            torch.distributed.barrier()  # sync: no rank runs ahead (or exits) while rank 0 writes
        self.last_checkpoint = os.path.join(self.ckpt_root, ckpt.step_dir(self.step))  # every rank knows it

    def resume(self, ckpt_dir: str, states: Optional[Dict[str, dict]] = None) -> None:
        """Continue from a checkpoint directory: weights, optimizer, scaler, step, data position, RNGs.
        `states`: its model / optimizer / trainer tensors when already read (and checked, rundir.py); a sharded
        (FSDP) checkpoint's model and optimizer are resharded onto this world size instead."""
        if states is None:
            states = {"trainer": ckpt.load_tensors(ckpt_dir, "trainer")}
        if sharded.is_sharded_checkpoint(ckpt_dir):
            sharded.load_model_optimizer(ckpt_dir, self.raw, self.opt)
        else:
            for stem in ("model", "optimizer"):
                if stem not in states:
                    states[stem] = ckpt.load_tensors(ckpt_dir, stem, self.env.device)
            self.raw.load_state_dict(states["model"])
            self.opt.load_state_dict(states["optimizer"])
        state = states["trainer"]
        self.step = self.saved_step = int(state["step"])
        self.last_checkpoint = ckpt_dir
        self.skipped_steps = int(state.get("skipped_steps", 0))
        self.scaler.load_state_dict(state["scaler"])
        if "skips" in state:
            self.skips.load_state(state["skips"])
        rngs = state["rng"]
        if rngs.shape[0] == self.env.world:
            set_rng_state(rngs[self.env.rank])
        else:  # a different world size cannot replay the same random streams
            print(f"warning: checkpoint from {rngs.shape[0]} ranks, resuming on {self.env.world}: "
                  f"random streams restart", file=sys.stderr)
            seed_everything(self.tc.seed + 7919 * self.env.rank + self.step)


class _NoBar:
    """The progress bar of a rank that shows none."""

    def update(self, n: int = 1) -> None:
        pass

    def set_postfix(self, **kwargs) -> None:
        pass

    def close(self) -> None:
        pass

