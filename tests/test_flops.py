"""FLOPs per step against closed forms: 3x the forward FLOPs of trained modules, 1x those without gradient
(an EMA copy under no_grad, a frozen layer fed data); the CPU attention kernel is counted; metrics.jsonl and
--dry-run report FLOPs per step, FLOP/s and MFU; counting leaves the model and the RNG as they were."""
import copy

import torch
from torch import nn

from cli_utils import TINY_MAE, read_metrics, run_cli
from m3i_modular.encoders.transformer import TransformerEncoder
from m3i_modular.training.flops import count_forward, step_flops
from m3i_modular.interfaces import Tokens
from m3i_modular.runtime.peaks import cpu_flops_per_cycle, gpu_peak


class Towers(nn.Module):
    """An online transformer (trained), its EMA copy (no_grad) and a frozen input projection."""

    def __init__(self, layers=2, dim=32, heads=4):
        super().__init__()
        self.stem = nn.Linear(dim, dim).requires_grad_(False)
        self.online = TransformerEncoder(layers=layers, heads=heads, dim=dim)
        self.ema = copy.deepcopy(self.online).requires_grad_(False)

    def forward(self, batch):
        x = self.stem(batch["x"])
        z = self.online(Tokens(x=x))
        with torch.no_grad():
            t = self.ema(Tokens(x=x))
        return {"loss": (z - t).pow(2).mean()}


def block_flops(b, n, d, layers):
    """A pre-norm block with MLP ratio 4: qkv 6nd^2, proj 2nd^2, MLP 16nd^2 (= 24 n d^2) and attention
    scores + values 4 n^2 d, per sample."""
    return b * layers * (24 * n * d * d + 4 * n * n * d)


def test_trained_3x_ema_and_frozen_1x_closed_form():
    b, n, d, layers = 3, 10, 32, 2
    model = Towers(layers, d)
    sample = {"index": torch.arange(b), "x": torch.randn(b, n, d)}
    f = step_flops(model, sample, batch_size=12)
    tower, stem = block_flops(b, n, d, layers), 2 * b * n * d * d
    scale = 12 / b
    assert f.trained == tower * scale                     # the online tower: on the autograd graph
    assert f.forward == (2 * tower + stem) * scale        # + its EMA copy + the frozen stem, forward only
    assert f.per_step == (3 * tower + tower + stem) * scale
    assert abs(f.forward_only_share - (tower + stem) / (2 * tower + stem)) < 1e-12


def test_counting_changes_nothing():
    model = Towers()
    model.bn = nn.BatchNorm1d(4)
    model.eval()
    x = {"index": torch.arange(2), "x": torch.randn(2, 5, 32)}
    before = copy.deepcopy(model.state_dict())
    torch.manual_seed(3)
    want = torch.rand(3)
    torch.manual_seed(3)
    orig_forward = model.forward
    model.forward = lambda batch: (model.bn(torch.randn(8, 4)), orig_forward(batch))[1]  # draws RNG, moves BN
    count_forward(model, x)
    assert torch.equal(torch.rand(3), want)
    assert not model.training and not model.online.training
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_m3i_forward_only_share_is_the_ema_tower(tmp_path):
    """M3I at tiny size (monitors off): without gradient run the EMA tower's passes over the two target views
    and UniGrad's second moment C = T^T T of each dense objective (2 x rows x L x D^2), nothing else."""
    from m3i_modular.recipe.config import load_config
    from m3i_modular.training.flops import sample_batch
    from m3i_modular.run import build_run
    sets = ["model.encoder.layers=2", "train.batch_size=8"] + [
        f"model.objectives.{o}.target.{k}=false" for o in ("intra_view", "inter_view")
        for k in ("mean_baseline", "collapse_metrics")]
    cfg = load_config("models/m3i_vit.json", overrides=sets)
    run = build_run(cfg)
    batch = sample_batch(run.dataset, run.collate, 2)
    f = step_flops(run.model, batch, batch_size=8)
    ema = run.model.shared["ema"]
    views = [count_forward(_Call(ema, v), batch) for v in ("view1", "view2")]  # intra- and inter-view targets
    assert all(c.trained == 0 for c in views)
    b, tokens, d = 2, (32 // 4) ** 2, 64
    assert f.forward - f.trained == (sum(c.total for c in views) + 2 * 2 * b * tokens * d * d) * 4
    assert 0.3 < f.forward_only_share < 0.6


class _Call(nn.Module):
    def __init__(self, tower, view):
        super().__init__()
        self.tower, self.view = tower, view

    def forward(self, batch):
        return self.tower(batch, view=self.view)


def test_metrics_and_dry_run_report_flops_and_mfu(tmp_path):
    sets = TINY_MAE + ["train.total_steps=2", "train.log_every=1", "train.save_every=0", "train.precision=fp32",
                       "train.device=cpu"]  # the CPU peak is an estimate (a GPU's comes from its table)
    args = [a for s in sets for a in ("--set", s)]
    run_cli("pretrain.py", "--config", "models/mae_vit.json", *args, "--output-dir", str(tmp_path / "r"),
            check=True)
    for r in read_metrics(tmp_path / "r"):
        assert r["flops_per_step"] > 0 and 0 < r["mfu"] < 1
        # both rates share the window's elapsed time
        assert abs(r["flops_per_s"] / r["samples_per_s"] - r["flops_per_step"] / 8) < 1e-6 * r["flops_per_step"]
    out = run_cli("pretrain.py", "--config", "models/mae_vit.json", *args, "--dry-run", check=True).stdout
    assert "# FLOPs per step (global batch)" in out and "MFU is measured against" in out and "estimate" in out


def test_peak_tables():
    assert gpu_peak("NVIDIA H100 80GB HBM3", "bf16").flops == 989.4e12
    assert gpu_peak("NVIDIA H100 PCIe", "bf16").flops == 756e12
    assert gpu_peak("NVIDIA A100-SXM4-80GB", "fp32", tf32=True).flops == 156e12
    assert gpu_peak("Some New GPU", "bf16").flops is None
    zen4 = {"vendor_id": "AuthenticAMD", "cpu family": "25", "flags": "avx2 fma avx512f avx512_bf16"}
    assert cpu_flops_per_cycle(zen4, "fp32")[0] == 32 and cpu_flops_per_cycle(zen4, "bf16")[0] == 64
    skx = {"vendor_id": "GenuineIntel", "cpu family": "6", "flags": "avx2 fma avx512f"}
    assert cpu_flops_per_cycle(skx, "fp32")[0] == 64 and cpu_flops_per_cycle(skx, "bf16")[0] == 64
    assert cpu_flops_per_cycle({"flags": "avx2 fma"}, "fp32")[0] == 32
