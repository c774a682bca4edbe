"""The trainer's pieces on a toy model: train_step apart from the loop (accumulation = one big batch, no update
on a non-finite loss), monitors get what they use and cannot change the run, the loss reduction has no
data-dependent branch (no device sync), and the RNG states a checkpoint stores round-trip."""
import json
import random

import numpy as np
import torch
from torch import nn

from m3i_modular.training.checkpoint import rng_state, set_rng_state
from m3i_modular.runtime.distributed import DistEnv
from m3i_modular.recipe.sections import ScheduleConfig, TrainConfig
from m3i_modular.training.schedules import Schedule
from m3i_modular.targets.reduce import masked_mean
from m3i_modular.training.trainer import Trainer


class Toy(nn.Module):
    """A linear regression with dropout (so the run draws from the global RNG every step)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.lin = nn.Linear(4, 1)
        self.drop = nn.Dropout(0.5)
        self.ema_calls = []

    def forward(self, batch):
        err = (self.lin(self.drop(batch["x"])).squeeze(-1) - batch["y"]) ** 2
        return {"loss": err.mean(), "toy_loss": err.mean(), "toy_max": err.max()}

    def after_optimizer_step(self, step, total_steps):
        self.ema_calls.append((step, total_steps))


class Data(torch.utils.data.Dataset):
    def __len__(self):
        return 64

    def __getitem__(self, p):
        g = torch.Generator().manual_seed(int(p))
        x = torch.randn(4, generator=g)
        return {"x": x, "y": x.sum(), "key": str(p)}


def collate(items):
    return {"x": torch.stack([i["x"] for i in items]), "y": torch.stack([i["y"] for i in items]),
            "key": [i["key"] for i in items]}


def make(tmp_path, *, monitors=None, **train):
    tmp_path.mkdir(parents=True, exist_ok=True)
    model = Toy()
    tc = TrainConfig.from_config({"total_steps": 4, "batch_size": 8, "num_workers": 0, "progress": False,
                                  "log_every": 2, **train})
    opt = torch.optim.SGD([{"params": list(model.parameters()), "lr": 0.1, "base_lr": 0.1, "lr_mult": 1.0}],
                          lr=0.1)
    return Trainer(model=model, optimizer=opt, schedule=Schedule(ScheduleConfig.from_config(None), 4),
                   dataset=Data(), collate=collate, train=tc, env=DistEnv(), config={},
                   output_dir=str(tmp_path), monitors=monitors)


def test_accumulated_step_equals_one_step_on_the_whole_batch(tmp_path):
    data = collate([Data()[i] for i in range(8)])
    halves = [{k: v[:4] for k, v in data.items()}, {k: v[4:] for k, v in data.items()}]
    one, two = make(tmp_path / "a", batch_size=8), make(tmp_path / "b", batch_size=8, grad_accum=2)
    one.model.eval(), two.model.eval()  # no dropout: both see the same function
    m1 = one.train_step([data])
    m2 = two.train_step(halves)
    torch.testing.assert_close(m2["loss"], m1["loss"])
    assert m2["toy_max"].requires_grad is False and m2["loss"].device.type == "cpu"
    for p1, p2 in zip(one.raw.parameters(), two.raw.parameters()):
        torch.testing.assert_close(p2, p1)
        assert p1.grad is None and p2.grad is None  # zeroed after the update
    assert one.step == 0  # the step counter, the hooks and the schedule belong to the loop


def test_a_non_finite_loss_skips_the_update(tmp_path):
    trainer = make(tmp_path)
    before = [p.detach().clone() for p in trainer.raw.parameters()]
    batch = collate([Data()[i] for i in range(8)])
    batch["y"][0] = float("nan")
    out = trainer.train_step([batch])
    assert torch.isnan(out["loss"]) and trainer.step_was_bad
    assert (trainer.skipped_steps, trainer.bad_in_a_row) == (1, 1)
    for p, b in zip(trainer.raw.parameters(), before):
        assert torch.equal(p, b) and p.grad is None
    trainer.train_step([collate([Data()[i] for i in range(8)])])  # a good step updates and ends the streak
    assert not trainer.step_was_bad and (trainer.skipped_steps, trainer.bad_in_a_row) == (1, 0)
    assert any(not torch.equal(p, b) for p, b in zip(trainer.raw.parameters(), before))


class RandomMonitor:
    """Draws from the global RNG, as a DataLoader or an augmentation inside a monitor would."""

    def __init__(self):
        self.calls = []

    def __call__(self, model, *, step, device, dtype):
        self.calls.append((type(model).__name__, step, device.type, dtype))
        torch.rand(100)
        return {"monitor_value": float(step)}


def test_monitors_get_model_step_device_dtype_and_cannot_change_the_run(tmp_path):
    plain = make(tmp_path / "plain")
    plain.train()
    mon = RandomMonitor()
    watched = make(tmp_path / "watched", monitors=[mon])
    last = watched.train()
    assert mon.calls == [("Toy", 2, "cpu", None), ("Toy", 4, "cpu", None)]  # at the logging steps
    assert last["monitor_value"] == 4.0
    for p1, p2 in zip(plain.raw.parameters(), watched.raw.parameters()):
        assert torch.equal(p1, p2)
    rows = [json.loads(line) for line in open(tmp_path / "watched" / "metrics.jsonl")]
    assert [r["step"] for r in rows] == [1, 2, 4]  # step 1 is always logged; monitors run at log_every
    assert list(rows[1]) == ["step", "loss", "toy_loss", "toy_max", "lr", "samples_per_s", "data_time_share",
                             "data_skipped", "data_skipped_total", "skipped_steps", "monitor_value"]
    assert "monitor_value" not in rows[0]
    assert watched.raw.ema_calls == [(1, 4), (2, 4), (3, 4), (4, 4)]


def test_masked_mean_has_no_data_dependent_branch():
    """A branch on the valid count would make the host wait for the device every step; dynamo refuses to
    trace such a branch in one graph, so fullgraph=True fails on it."""
    fn = torch.compile(masked_mean, backend="eager", fullgraph=True)
    values = torch.randn(6, requires_grad=True)
    some = torch.tensor([True, False, True, False, False, False])
    torch.testing.assert_close(fn(values, some), values[some].mean())
    none = torch.zeros(6, dtype=torch.bool)
    zero = fn(values, none)
    assert zero.item() == 0.0 and zero.requires_grad  # a rank with nothing valid still joins the backward
    zero.backward()
    assert torch.equal(values.grad, torch.zeros(6))


def test_rng_states_round_trip():
    state = rng_state()
    want = (torch.rand(3), np.random.rand(3), random.random())
    torch.manual_seed(123), np.random.seed(123), random.seed(123)
    set_rng_state(state)
    got = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(got[0], want[0]) and np.array_equal(got[1], want[1]) and got[2] == want[2]
