"""Loggers: every one is fed the same record and none changes it; wandb runs offline with no account, writes its
files into the run directory, and a resumed run logs to the same wandb run (its id kept in the run directory)."""
import copy
import glob
import json
import os

import pytest
import torch
from torch import nn

from cli_utils import TINY_MAE, read_metrics
from m3i_modular.runtime.distributed import DistEnv
from m3i_modular.training.loggers import WANDB_ID_FILE
from m3i_modular.registry import LOGGERS, build
from m3i_modular.training.schedules import Schedule
from m3i_modular.recipe.sections import ScheduleConfig, TrainConfig
from m3i_modular.training.trainer import Trainer

try:
    import wandb
    HAVE_WANDB = wandb is not None
except ImportError:
    HAVE_WANDB = False
try:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    HAVE_TB = True
except ImportError:
    HAVE_TB = False

needs_wandb = pytest.mark.skipif(not HAVE_WANDB, reason="wandb is not installed (pip install -e .[wandb])")

OFFLINE = {"WANDB_MODE": "offline", "WANDB_SILENT": "true", "WANDB_CONSOLE": "off", "WANDB_DISABLE_GIT": "true"}


@pytest.fixture
def wandb_offline(tmp_path, monkeypatch):
    """wandb with no account and no network; its caches under tmp_path, not the home directory."""
    for k, v in OFFLINE.items():
        monkeypatch.setenv(k, v)
    for k in ("WANDB_API_KEY", "WANDB_RUN_ID", "WANDB_NAME", "WANDB_PROJECT", "WANDB_ENTITY", "WANDB_RESUME"):
        monkeypatch.delenv(k, raising=False)
    for k in ("WANDB_CACHE_DIR", "WANDB_CONFIG_DIR", "WANDB_DATA_DIR", "WANDB_ARTIFACT_DIR"):
        monkeypatch.setenv(k, str(tmp_path / "wandb_home" / k.lower()))
    return {**OFFLINE, **{k: os.environ[k] for k in ("WANDB_CACHE_DIR", "WANDB_CONFIG_DIR", "WANDB_DATA_DIR",
                                                         "WANDB_ARTIFACT_DIR")}}


def offline_runs(run_dir, run_id):
    return sorted(glob.glob(os.path.join(run_dir, "wandb", f"offline-run-*-{run_id}")))


@needs_wandb
def test_wandb_offline_writes_its_files_and_a_second_start_reuses_the_run_id(tmp_path, wandb_offline):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "config.json").write_text(json.dumps({"train": {"total_steps": 3}}))
    first = build(LOGGERS, {"type": "wandb"}, output_dir=str(run_dir))
    run_id = first.run_id
    assert (run_dir / WANDB_ID_FILE).read_text().strip() == run_id
    assert first.run.id == run_id and first.run.config["train"] == {"total_steps": 3}
    record = {"step": 1, "loss": 0.5, "lr": 1e-3}
    first.log(record)
    assert record == {"step": 1, "loss": 0.5, "lr": 1e-3}  # not changed
    first.close()
    [files] = offline_runs(run_dir, run_id)
    assert os.path.getsize(os.path.join(files, f"run-{run_id}.wandb")) > 0

    again = build(LOGGERS, {"type": "wandb"}, output_dir=str(run_dir))  # what --resume does
    assert again.run_id == run_id and again.run.id == run_id
    again.log({"step": 2, "loss": 0.4})
    again.close()
    assert len(offline_runs(run_dir, run_id)) == 2  # offline: one file per start, both of the same run id
    other = build(LOGGERS, {"type": "wandb"}, output_dir=str(tmp_path / "other"))  # another directory, another run
    other.close()
    assert other.run_id != run_id


@needs_wandb
def test_resume_logs_to_the_same_wandb_run(tmp_path, cli, wandb_offline):
    sets = [a for s in TINY_MAE + ["train.total_steps=3", "train.log_every=1", 'train.loggers=["jsonl", "wandb"]']
            for a in ("--set", s)]
    out = str(tmp_path / "run")
    cli("pretrain.py", "--config", "models/mae_vit.json", *sets, "--output-dir", out, "--stop-at", "2",
        env=wandb_offline, check=True)
    with open(os.path.join(out, WANDB_ID_FILE)) as f:
        run_id = f.read().strip()
    assert len(offline_runs(out, run_id)) == 1
    proc = cli("pretrain.py", "--config", "models/mae_vit.json", *sets, "--output-dir", out, "--resume",
               env=wandb_offline, check=True)
    assert "resuming from step 2" in proc.stderr
    with open(os.path.join(out, WANDB_ID_FILE)) as f:
        assert f.read().strip() == run_id
    assert len(offline_runs(out, run_id)) == 2
    assert len(glob.glob(os.path.join(out, "wandb", "offline-run-*"))) == 2  # no third run appeared
    assert [r["step"] for r in read_metrics(out)] == [1, 2, 3]


# -- every logger is fed the same record ------------------------------------------------------------------

class Toy(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.lin = nn.Linear(4, 1)

    def forward(self, batch):
        err = (self.lin(batch["x"]).squeeze(-1) - batch["y"]) ** 2
        return {"loss": err.mean(), "toy_loss": err.mean()}

    def after_optimizer_step(self, step, total_steps):
        pass


class Data(torch.utils.data.Dataset):
    def __len__(self):
        return 64

    def __getitem__(self, p):
        x = torch.randn(4, generator=torch.Generator().manual_seed(int(p)))
        return {"x": x, "y": x.sum()}


def collate(items):
    return {k: torch.stack([i[k] for i in items]) for k in ("x", "y")}


@pytest.fixture
def recorders():
    """Two plugin loggers that keep what they were handed (the object and a copy of it at that moment)."""
    seen = {}

    def make(tag):
        class Recorder:
            def __init__(self, *, output_dir: str):
                seen[tag] = []

            def log(self, record):
                seen[tag].append((record, copy.deepcopy(record)))

            def close(self):
                pass
        return Recorder

    names = ("test_recorder_first", "test_recorder_last")
    for n in names:
        LOGGERS.register(n)(make(n))
    yield seen
    for n in names:
        del LOGGERS._entries[n]


def test_every_logger_is_fed_the_same_record(tmp_path, recorders, monkeypatch):
    loggers = ["test_recorder_first", "jsonl"] + (["tensorboard"] if HAVE_TB else []) + (["wandb"] if HAVE_WANDB
                                                                                          else [])
    loggers.append("test_recorder_last")
    for k, v in OFFLINE.items():
        monkeypatch.setenv(k, v)
    for k in ("WANDB_CACHE_DIR", "WANDB_CONFIG_DIR", "WANDB_DATA_DIR", "WANDB_ARTIFACT_DIR"):
        monkeypatch.setenv(k, str(tmp_path / "wandb_home" / k.lower()))
    tc = TrainConfig.from_config({"total_steps": 4, "batch_size": 8, "num_workers": 0, "progress": False,
                                  "log_every": 2, "loggers": loggers})
    model = Toy()
    opt = torch.optim.SGD([{"params": list(model.parameters()), "lr": 0.1, "base_lr": 0.1, "lr_mult": 1.0}], lr=0.1)
    trainer = Trainer(model=model, optimizer=opt, schedule=Schedule(ScheduleConfig.from_config(None), 4),
                      dataset=Data(), collate=collate, train=tc, env=DistEnv(), config={}, output_dir=str(tmp_path),
                      monitors=None)
    sent_to_wandb = []
    trainer._open_loggers()  # loggers open when training starts (nothing is written before); wrap wandb's first
    for lg in trainer.loggers:
        if type(lg).__name__ == "WandbLogger":
            real = lg.run.log
            lg.run.log = lambda data, *a, _real=real, **kw: (sent_to_wandb.append(copy.deepcopy(data)),
                                                               _real(data, *a, **kw))[1]
    trainer.train()

    first, last = recorders["test_recorder_first"], recorders["test_recorder_last"]
    assert [r["step"] for r, _ in first] == [1, 2, 4]  # step 1 is always logged, then every log_every
    for (obj_a, copy_a), (obj_b, copy_b) in zip(first, last):
        assert obj_a is obj_b  # one dict, handed to every logger
        assert copy_a == copy_b  # and no logger between the two changed it
    records = [c for _, c in first]
    assert {"loss", "toy_loss", "lr", "samples_per_s"} <= set(records[0])
    assert read_metrics(tmp_path) == json.loads(json.dumps(records))
    numbers = [{k: v for k, v in r.items() if isinstance(v, (int, float))} for r in records]
    if HAVE_WANDB:
        assert sent_to_wandb == numbers
    if HAVE_TB:
        acc = EventAccumulator(str(tmp_path / "tb"))
        acc.Reload()
        for key in set(numbers[0]) - {"step"}:
            events = acc.Scalars(key)
            assert [e.step for e in events] == [1, 2, 4]
            assert [e.value for e in events] == pytest.approx([n[key] for n in numbers], rel=1e-6)
