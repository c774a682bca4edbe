"""A user registers a new target from a module outside the package and trains with it: no package edit."""
import json
import textwrap

from cli_utils import TINY_MAE, read_metrics

PLUGIN = textwrap.dedent('''
    import torch
    from torch import nn
    from m3i_modular.registry import TARGETS
    from m3i_modular.targets.reduce import masked_mean

    @TARGETS.register("laplace_l1")
    class LaplaceL1(nn.Module):
        """Laplace p(z_y | z_hat): an L1 loss."""
        def __init__(self, *, scale: float = 1.0):
            super().__init__()
            self.scale = scale

        def forward(self, pred, tgt, loss_mask=None):
            per = (pred.float() - tgt.value.float()).abs().mean(-1) / self.scale
            w = tgt.valid[:, None].expand_as(per)
            if loss_mask is not None:
                w = w & loss_mask
            return masked_mean(per, w), {"plugin_called": torch.tensor(1.0)}
''')


def test_plugin_target_trains_without_package_edit(tmp_path, cli):
    (tmp_path / "my_lab_targets.py").write_text(PLUGIN)
    with open("models/mae_vit.json") as f:
        recipe = json.load(f)
    recipe["model"]["objectives"]["mae"]["target"] = {"type": "laplace_l1", "scale": 2.0}
    path = tmp_path / "l1.json"
    path.write_text(json.dumps(recipe))
    sets = [a for s in TINY_MAE + ["train.total_steps=3", "train.log_every=1"] for a in ("--set", s)]
    # without the import the type is unknown: one line, exit 2
    proc = cli("pretrain.py", "--config", str(path), *sets, "--output-dir", str(tmp_path / "no"))
    assert proc.returncode == 2 and "unknown target type 'laplace_l1'" in proc.stderr
    cli("pretrain.py", "--config", str(path), *sets, "--import", str(tmp_path / "my_lab_targets.py"),
        "--output-dir", str(tmp_path / "run"), check=True)
    recs = read_metrics(tmp_path / "run")
    assert [r["mae_plugin_called"] for r in recs] == [1.0, 1.0, 1.0]
    assert all(r["mae_loss"] > 0 for r in recs)
    # the same through the recipe's own "imports" list, as a dotted module name on PYTHONPATH
    recipe["imports"] = ["my_lab_targets"]
    path.write_text(json.dumps(recipe))
    cli("pretrain.py", "--config", str(path), *sets, "--output-dir", str(tmp_path / "run2"),
        env={"PYTHONPATH": f"{tmp_path}:."}, check=True)
    assert read_metrics(tmp_path / "run2")[0]["mae_loss"] == recs[0]["mae_loss"] * 1.0
