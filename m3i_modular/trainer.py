"""The training loop: one process or torchrun DDP, the whole PretrainModel wrapped once and called once per
micro-step; autocast; clipping; checkpoints with exact resume (DESIGN §8)."""
import contextlib
import os
import random
import sys
import time
from typing import Any, Dict, Optional

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel as DDP

from . import checkpoint as ckpt
from . import loggers as _loggers  # noqa: F401  (registration)
from .distributed import DistEnv, all_mean, gather_bytes
from .data.skips import SkipTally
from .registry import LOGGERS, build, config_path
from .sections import TrainConfig


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2 ** 32)
    torch.manual_seed(seed)


def rng_state() -> torch.Tensor:
    """This process's RNG states as one uint8 tensor (torch CPU, numpy, python; CUDA when present)."""
    parts = [torch.get_rng_state()]
    key, pos = np.random.get_state()[1:3]
    parts.append(torch.from_numpy(np.append(key.astype(np.int64), pos).astype(np.int64)).view(torch.uint8))
    py = random.getstate()[1]
    parts.append(torch.tensor(py, dtype=torch.int64).view(torch.uint8))
    if torch.cuda.is_available():
        parts.append(torch.cuda.get_rng_state())
    sizes = torch.tensor([p.numel() for p in parts], dtype=torch.int64).view(torch.uint8)
    return torch.cat([torch.tensor([len(parts)], dtype=torch.int64).view(torch.uint8), sizes] + parts)


def set_rng_state(state: torch.Tensor) -> None:
    n = int(state[:8].view(torch.int64))
    sizes = state[8:8 + 8 * n].view(torch.int64).tolist()
    off, parts = 8 + 8 * n, []
    for s in sizes:
        parts.append(state[off:off + s])
        off += s
    torch.set_rng_state(parts[0].clone())
    np_vals = parts[1].clone().view(torch.int64).numpy()
    np.random.set_state(("MT19937", np_vals[:-1].astype(np.uint32), int(np_vals[-1]), 0, 0.0))
    random.setstate((3, tuple(parts[2].clone().view(torch.int64).tolist()), None))
    if len(parts) > 3 and torch.cuda.is_available():
        torch.cuda.set_rng_state(parts[3].clone())


def move(batch: Any, device: torch.device) -> Any:
    if torch.is_tensor(batch):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: move(v, device) for k, v in batch.items()}
    return batch


class Trainer:
    def __init__(self, *, model: torch.nn.Module, optimizer: torch.optim.Optimizer, schedule, dataset,
                 collate, train: TrainConfig, env: DistEnv, config: dict, output_dir: str,
                 extra_files: Optional[Dict[str, str]] = None, monitors: Optional[list] = None):
        self.raw, self.opt, self.schedule, self.dataset, self.collate = model, optimizer, schedule, dataset, collate
        self.tc, self.env, self.config, self.out = train, env, config, output_dir
        self.extra_files = extra_files or {}
        self.monitors = monitors or []
        self.step = 0
        self.saved_step = -1
        # unreadable samples the data pipeline replaced: logged, and past data.max_skip_share the run stops
        self.skips = SkipTally(getattr(dataset, "max_skip_share", 1.0))
        self.ckpt_root = os.path.join(output_dir, "checkpoints")
        dev = env.device
        self.raw.to(dev)
        self.model = self.raw
        if env.world > 1:
            self.model = DDP(self.raw, device_ids=[dev.index] if dev.type == "cuda" else None,
                             find_unused_parameters=train.find_unused_parameters)
        if train.compile:
            self.model = torch.compile(self.model)
        self.autocast_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(train.precision)
        self.scaler = torch.amp.GradScaler(dev.type, enabled=train.precision == "fp16")
        self.loggers = []
        if env.is_main:
            for i, name in enumerate(train.loggers):
                with config_path(f"train.loggers[{i}]", absolute=True):
                    self.loggers.append(build(LOGGERS, {"type": name}, output_dir=output_dir))

    # -- state ------------------------------------------------------------------------------------------
    def save(self) -> None:
        self.saved_step = self.step
        rngs = torch.stack(gather_bytes(rng_state()))
        skips = self.skips.state()
        if self.env.is_main:
            state = {"step": torch.tensor(self.step), "consumed": torch.tensor(self.step * self.tc.batch_size),
                     "rng": rngs, "scaler": self.scaler.state_dict(), "skips": skips}
            ckpt.save_checkpoint(self.ckpt_root, self.step,
                                 {"model": self.raw.state_dict(), "optimizer": self.opt.state_dict(),
                                  "trainer": state},
                                 config=self.config, meta=ckpt.run_metadata(self.env.world, self.tc.precision),
                                 extra_files=self.extra_files, keep_last=self.tc.keep_last)
        if self.env.world > 1:
            torch.distributed.barrier()

    def resume(self, ckpt_dir: str) -> None:
        self.raw.load_state_dict(ckpt.load_tensors(ckpt_dir, "model", self.env.device))
        self.opt.load_state_dict(ckpt.load_tensors(ckpt_dir, "optimizer", self.env.device))
        state = ckpt.load_tensors(ckpt_dir, "trainer")
        self.step = self.saved_step = int(state["step"])
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

    # -- loop -------------------------------------------------------------------------------------------
    def _loader(self):
        from torch.utils.data import DataLoader
        from .data.sampling import PositionSampler
        per_rank = self.tc.batch_size // (self.env.world * self.tc.grad_accum)
        sampler = PositionSampler(start=self.step * self.tc.batch_size, rank=self.env.rank,
                                  world_size=self.env.world)
        nw = self.tc.num_workers
        # A private generator: creating the loader must not draw from the global RNG (exact resume).
        return DataLoader(self.dataset, batch_size=per_rank, sampler=sampler, num_workers=nw,
                          collate_fn=self.collate, generator=torch.Generator(), persistent_workers=nw > 0,
                          pin_memory=self.env.device.type == "cuda", prefetch_factor=4 if nw > 0 else None)

    def _autocast(self):
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.env.device.type, dtype=self.autocast_dtype)

    def train(self, stop_at: Optional[int] = None) -> Dict[str, float]:
        """Train to train.total_steps, or stop after step `stop_at` (a preemptible job's time slice) with a
        checkpoint there; the schedules still read total_steps, so a resumed run continues exactly."""
        tc, env = self.tc, self.env
        it = iter(self._loader())
        bar = None
        if env.is_main and tc.progress:
            from tqdm import tqdm
            bar = tqdm(total=tc.total_steps, initial=self.step, desc="train", mininterval=2.0, file=sys.stderr)
        last: Dict[str, float] = {}
        t_window, data_window, n_window = time.perf_counter(), 0.0, 0
        self.model.train()
        end = tc.total_steps if stop_at is None else min(stop_at, tc.total_steps)
        while self.step < end:
            lr_factor = self.schedule.apply(self.opt, self.step)
            sums: Dict[str, torch.Tensor] = {}
            for micro in range(tc.grad_accum):
                t0 = time.perf_counter()
                batch = move(next(it), env.device)
                data_window += time.perf_counter() - t0
                self.skips.add(batch)
                sync = micro == tc.grad_accum - 1 or env.world == 1
                ctx = self.model.no_sync() if (not sync and isinstance(self.model, DDP)) else contextlib.nullcontext()
                with ctx:
                    with self._autocast():
                        out = self.model(batch)
                    self.scaler.scale(out["loss"] / tc.grad_accum).backward()
                for k, v in out.items():
                    v = v.detach().float()
                    sums[k] = sums[k] + v / tc.grad_accum if k in sums else v / tc.grad_accum
            if not torch.isfinite(sums["loss"]):
                raise FloatingPointError(f"loss is {float(sums['loss'])} at step {self.step + 1}: lower optim.lr "
                                         f"or set train.clip_grad")
            if tc.clip_grad > 0:
                self.scaler.unscale_(self.opt)
                torch.nn.utils.clip_grad_norm_(self.raw.parameters(), tc.clip_grad)
            self.scaler.step(self.opt)
            self.scaler.update()
            self.opt.zero_grad(set_to_none=True)
            self.step += 1
            self.raw.after_optimizer_step(self.step, tc.total_steps)
            n_window += 1
            if self.step % tc.log_every == 0 or self.step == tc.total_steps:
                elapsed = time.perf_counter() - t_window
                rec = {"step": self.step, **all_mean(sums),
                       "lr": self.opt.param_groups[0]["base_lr"] * lr_factor,
                       "samples_per_s": n_window * tc.batch_size / max(elapsed, 1e-9),
                       "data_time_share": data_window / max(elapsed, 1e-9), **self.skips.report()}
                for mon in self.monitors:
                    rec.update(mon(self))
                for lg in self.loggers:
                    lg.log(rec)
                last = rec
                t_window, data_window, n_window = time.perf_counter(), 0.0, 0
                if bar is not None:
                    bar.set_postfix(loss=f"{rec['loss']:.4f}")
            if bar is not None:
                bar.update(1)
            if tc.save_every and self.step % tc.save_every == 0:
                self.save()
        if self.saved_step != self.step:
            self.save()  # always leave a checkpoint at the last step run
        if bar is not None:
            bar.close()
        for lg in self.loggers:
            lg.close()
        return last


