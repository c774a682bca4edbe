"""The recipes' CPU defaults learn on the embedded data (real CLI, fixed seed)."""
import pytest

from cli_utils import read_metrics


@pytest.mark.slow
def test_mae_vit_30_steps_loss_drops(tmp_path, cli):
    out = tmp_path / "mae"
    cli("pretrain.py", "--config", "models/mae_vit.json", "--set", "train.total_steps=30", "--output-dir",
        str(out), env={"OMP_NUM_THREADS": "2"}, check=True)
    losses = [r["loss"] for r in read_metrics(out)]
    assert len(losses) == 30
    assert sum(losses[-5:]) / 5 <= 0.8 * sum(losses[:5]) / 5, losses
