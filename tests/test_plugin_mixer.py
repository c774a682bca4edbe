"""A lab adds a new mixer (with its own selectors) and a decoder that reads an extra batch field, from a module
outside the package, and trains through the real CLI: no package edit. A plugin that breaks the component
contract fails at build time with one error line and exit code 2."""
import json
import textwrap

import pytest

from cli_utils import read_metrics

PLUGIN = textwrap.dedent('''
    """A CutMix-style mixer on the token grid, its two selectors, and a decoder that reads a batch field."""
    import torch
    from torch import nn

    from m3i_modular.interfaces import Selection
    from m3i_modular.registry import BATCH_TRANSFORMS, DECODERS, SELECTORS
    from m3i_modular.selectors.selection import role_selection


    @BATCH_TRANSFORMS.register("cutmix_boxes")
    class CutMixBoxes(nn.Module):
        """Pastes a box x box token square of image i - 1 at a random place into image i. Writes the mixed
        view, its own bookkeeping batch["cutmix"][output], and batch["box_area"]: for each image, the share of
        the input it is pasted into that its box covers."""

        def __init__(self, *, patch_size: int, box: int = 2, source: str = "view1", output: str = "cut"):
            super().__init__()
            self.p, self.box, self.source, self.output = patch_size, box, source, output

        def forward(self, batch):
            img = batch["views"][self.source]
            b, _, h, w = img.shape
            gh, gw, dev = h // self.p, w // self.p, img.device
            y = torch.randint(0, gh - self.box + 1, (b,), device=dev)
            x = torch.randint(0, gw - self.box + 1, (b,), device=dev)
            ys, xs = torch.arange(gh, device=dev), torch.arange(gw, device=dev)
            rows_in = (ys[None, :] >= y[:, None]) & (ys[None, :] < y[:, None] + self.box)
            cols_in = (xs[None, :] >= x[:, None]) & (xs[None, :] < x[:, None] + self.box)
            inside = rows_in[:, :, None] & cols_in[:, None, :]                      # (B, gh, gw)
            pix = inside.repeat_interleave(self.p, 1).repeat_interleave(self.p, 2)[:, None]
            out = dict(batch)
            out["views"] = dict(batch["views"], **{self.output: torch.where(pix, img.roll(1, 0), img)})
            info = {"inside": inside.flatten(1), "source": self.source}
            out["cutmix"] = dict(batch.get("cutmix", {}), **{self.output: info})
            out["box_area"] = inside.flatten(1).float().mean(1).roll(-1, 0)  # image j sits in input j + 1
            return out


    def _role(enc, batch, pasted):
        info = batch["cutmix"][enc.name]
        b = enc.z.shape[0]
        rows = torch.arange(b, device=enc.z.device)
        if pasted:
            rows = (rows - 1) % b                  # input i shows image i - 1 inside the box
        geometry = batch.get("geometry", {}).get(info["source"])
        geometry = None if geometry is None else geometry.index_select(0, rows)
        mine = info["inside"] if pasted else ~info["inside"]
        return role_selection(enc, mine, rows, geometry=geometry, view=info["source"])


    @SELECTORS.register("box")
    def select_box(enc, batch):
        return _role(enc, batch, True)


    @SELECTORS.register("frame")
    def select_frame(enc, batch):
        return _role(enc, batch, False)


    @DECODERS.register("area_pool")
    class AreaPool(nn.Module):
        """Mean of the selected tokens, with the share of the input they cover, through a linear head."""
        needs = ("batch:box_area",)

        def __init__(self, *, in_dim: int, out_dim: int, expect_tokens: int):
            super().__init__()
            self.expect_tokens = expect_tokens
            self.head = nn.Linear(in_dim + 1, out_dim)

        def forward(self, sel: Selection, *, box_area: torch.Tensor) -> torch.Tensor:
            n, k = sel.z.shape[:2]
            if k != self.expect_tokens or box_area is None or box_area.shape != (n,):
                raise ValueError(f"expected {self.expect_tokens} tokens and one box_area per row, got {k} "
                                 f"tokens and {None if box_area is None else tuple(box_area.shape)}")
            return self.head(torch.cat([sel.z.mean(1), box_area[:, None].to(sel.z.dtype)], 1))


    @DECODERS.register("area_pool_undeclared")
    class AreaPoolUndeclared(AreaPool):
        needs = ()                                  # forgot to declare what forward() requires


    @DECODERS.register("no_out_dim")
    class NoOutDim(nn.Module):
        def __init__(self, *, in_dim: int):
            super().__init__()
            self.head = nn.Linear(in_dim, 10)

        def forward(self, sel):
            return self.head(sel.z.mean(1))
''')

TINY = ["model.embedding.image_size=16", "model.embedding.dim=32", "model.encoder.dim=32", "model.encoder.layers=1",
        "model.encoder.heads=2", "data.sources.0.image_size=16", "data.sources.0.num_samples=64",
        "views.view1.0.size=16", "train.batch_size=8", "train.num_workers=0", "train.progress=false",
        "train.precision=fp32", "train.total_steps=3", "train.log_every=1", "train.save_every=0"]


def _recipe(tmp_path, box_decoder):
    with open("models/supervised_vit.json") as f:
        recipe = json.load(f)
    model = recipe["model"]
    model["batch_transforms"] = [{"type": "cutmix_boxes", "patch_size": 4, "box": 2, "output": "cut"}]
    category = {"type": "category", "num_classes": 10}
    model["objectives"] = {
        "box": {"input": "cut", "select": "box", "target_view": "label", "target_embedding": category,
                "decoder": box_decoder, "target": {"type": "boltzmann"}},
        "frame": {"input": "cut", "select": "frame", "target_view": "label", "target_embedding": category,
                  "decoder": {"type": "pool", "pool": "mean", "head": "linear"}, "target": {"type": "boltzmann"}},
    }
    path = tmp_path / f"cutmix_{box_decoder['type']}.json"
    path.write_text(json.dumps(recipe))
    return str(path)


def _run(cli, tmp_path, recipe, out, **kw):
    (tmp_path / "my_lab_mix.py").write_text(PLUGIN)
    sets = [a for s in TINY for a in ("--set", s)]
    return cli("pretrain.py", "--config", recipe, *sets, "--import", str(tmp_path / "my_lab_mix.py"),
               "--output-dir", str(tmp_path / out), **kw)


def test_plugin_mixer_selectors_and_batch_field_decoder_train(tmp_path, cli):
    recipe = _recipe(tmp_path, {"type": "area_pool", "expect_tokens": 4})
    _run(cli, tmp_path, recipe, "run", check=True)
    recs = read_metrics(tmp_path / "run")
    assert [r["step"] for r in recs] == [1, 2, 3]
    for r in recs:
        # both roles of the mixed input trained: the box (4 of 16 tokens) and the frame around it
        assert r["box_loss"] > 0 and r["frame_loss"] > 0
        assert abs(r["loss"] - (r["box_loss"] + r["frame_loss"])) < 1e-4 * r["loss"]
    assert recs[0]["box_count"] == recs[0]["frame_count"] == 8


def _one_error_line(proc):
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert len(lines) == 1, proc.stderr[-2000:]
    return lines[0]


@pytest.mark.parametrize("decoder,missing", [
    ({"type": "no_out_dim"}, "its constructor takes no 'out_dim' (the target embedding's width)"),
    ({"type": "area_pool_undeclared", "expect_tokens": 4},
     "forward() requires 'box_area', which the model does not pass"),
])
def test_plugin_breaking_the_contract_is_one_line_at_build(tmp_path, cli, decoder, missing):
    recipe = _recipe(tmp_path, decoder)
    line = _one_error_line(_run(cli, tmp_path, recipe, "bad"))
    assert line.startswith("error: ") and recipe in line
    assert "model.objectives.box.decoder" in line and missing in line
    assert not (tmp_path / "bad" / "metrics.jsonl").exists()   # failed at build, before any step
