"""M3I resumes exactly: the EMA tower, the mixing block maps (global RNG) and the learnable temperature."""
import pytest
import torch

from cli_utils import read_metrics

TINY_M3I = ["model.embedding.image_size=16", "data.sources.0.image_size=16", "data.sources.0.num_samples=128",
            "views.view1.0.size=16", "views.view2.0.size=16", "train.batch_size=8", "train.num_workers=2",
            "train.progress=false", "train.log_every=1", "train.save_every=2", "train.precision=bf16",
            "model.encoder.layers=2", "model.objectives.intra_view.decoder.layers=1",
            "model.objectives.inter_view.decoder.layers=1"]


def _run(cli, out, steps, *extra):
    sets = [a for s in TINY_M3I + [f"train.total_steps={steps}"] for a in ("--set", s)]
    return cli("pretrain.py", "--config", "models/m3i_vit.json", *sets, "--output-dir", str(out), *extra,
               check=True)


@pytest.mark.slow
def test_m3i_resume_is_bit_equal(tmp_path, cli):
    _run(cli, tmp_path / "a", 4)
    _run(cli, tmp_path / "b", 4, "--stop-at", "2")
    _run(cli, tmp_path / "b", 4, "--resume")
    ra, rb = read_metrics(tmp_path / "a"), read_metrics(tmp_path / "b")
    assert [r["step"] for r in ra] == [1, 2, 3, 4] == [r["step"] for r in rb]
    for x, y in zip(ra, rb):
        for k in ("loss", "intra_view_loss", "inter_view_loss", "category_loss", "text_loss"):
            assert x[k] == y[k], (k, x, y)
    sa = torch.load(tmp_path / "a" / "checkpoints" / "step_00000004" / "model.pt", weights_only=True)
    sb = torch.load(tmp_path / "b" / "checkpoints" / "step_00000004" / "model.pt", weights_only=True)
    assert any(k.startswith("shared.ema.") for k in sa)
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k
