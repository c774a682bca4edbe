"""The evaluation entry points end to end: a tiny pretrained run evaluated on an ImageNet-style image folder
(written here with PIL) through the real command line, --set with --checkpoint, --check, and the contract
compare_recipes relies on: a flat JSON object in --output, the same JSON as the last stdout line, user
mistakes and evaluations that do not apply as one stderr line with exit code 2."""
import json
import os

import numpy as np
import pytest
from PIL import Image

from cli_utils import REPO, load_script, run_cli
from m3i_modular.cli import main as pretrain_main

RECIPE = os.path.join(REPO, "models", "mae_vit.json")
TINY = ["train.total_steps=3", "train.batch_size=8", "train.num_workers=0", "train.precision=fp32",
        "train.progress=false", "train.save_every=0", "train.log_every=1", "data.sources.0.num_samples=64",
        "model.encoder.layers=2", "model.encoder.dim=32", "model.embedding.dim=32"]
# a tiny CLIP at random init: the text tower shrunk too
TINY_CLIP = ["model.embedding.dim=32", "model.encoder.dim=32", "model.encoder.layers=1",
             "model.objectives.clip.target_embedding.dim=32",
             "model.objectives.clip.target_embedding.embedding.word.dim=32",
             "model.objectives.clip.target_embedding.embedding.position.dim=32",
             "model.objectives.clip.target_embedding.encoder.dim=32",
             "model.objectives.clip.target_embedding.encoder.layers=1"]
COLOURS = {"blue": (40, 60, 220), "green": (40, 200, 60), "red": (220, 40, 40)}

probe = load_script("finetune/run_linear_probe.py")
knn = load_script("finetune/run_knn.py")
dense = load_script("finetune/run_dense_probe.py")
zero_shot = load_script("finetune/run_zero_shot.py")


def _sets(items):
    return [a for s in items for a in ("--set", s)]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("eval_cli") / "run"
    assert pretrain_main(["--config", RECIPE, "--output-dir", str(out)] + _sets(TINY)) == 0
    return out


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """train/ and val/ class folders (a colour per class, random size and noise) and one corrupt val file."""
    root = tmp_path_factory.mktemp("imgs")
    rng = np.random.default_rng(0)
    for split, n in (("train", 8), ("val", 4)):
        for name, rgb in COLOURS.items():
            (root / split / name).mkdir(parents=True)
            for i in range(n):
                h, w = rng.integers(28, 48, 2)
                img = np.clip(np.array(rgb) + rng.normal(0, 25, (h, w, 3)), 0, 255).astype(np.uint8)
                Image.fromarray(img).save(root / split / name / f"{i}.jpg")
    (root / "val" / "red" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    return root


def _last_json(stdout: str) -> dict:
    return json.loads(stdout.strip().splitlines()[-1])


def _flat(result: dict) -> bool:
    return all(isinstance(v, (str, int, float, bool)) or v is None for v in result.values())


def test_probe_a_run_on_an_image_folder_through_the_cli(run_dir, folders, tmp_path):
    out = tmp_path / "probe.json"
    proc = run_cli("finetune/run_linear_probe.py", "--checkpoint", str(run_dir), "--train-data",
                   str(folders / "train"), "--val-data", str(folders / "val"), "--train-samples", "12",
                   "--low-label-per-class", "2", "--max-iter", "50", "--output", str(out), check=True)
    res = json.loads(out.read_text())
    assert _last_json(proc.stdout) == res and _flat(res)
    assert res["eval"] == "linear_probe" and res["primary"] == "linear_acc" and res["step"] == 3
    assert res["train_data"] == str(folders / "train") and res["train_subset"] == "stratified"
    assert res["val_subset"] == "all" and res["skipped"] == 1        # the corrupt file, counted, not fatal
    assert res["n_train"] == 12 and res["n_test"] == 12 and res["num_classes"] == 3
    assert res["low_label_n_train"] == 6 and 0.0 <= res["low_label_acc"] <= 1.0
    assert res["linear_acc"] >= 0.9  # one colour per class: even 3 pre-training steps separate them


def test_knn_on_an_image_folder_and_set_with_checkpoint(run_dir, folders, tmp_path, capsys):
    out = tmp_path / "knn.json"
    argv = ["--checkpoint", str(run_dir), "--train-data", str(folders / "train"), "--val-data",
            str(folders / "val"), "--k", "3", "5", "--output", str(out)]
    assert knn.main(argv) == 0
    res = json.loads(out.read_text())
    assert _last_json(capsys.readouterr().out) == res and _flat(res)
    assert res["knn_acc"] == res["knn_acc_k3"] and "knn_acc_k5" in res and res["train_subset"] == "all"
    # --set changes the checkpoint's own recipe: here its data (rendered larger, resized by the eval view)
    argv = ["--checkpoint", str(run_dir), "--set", "data.sources.0.image_size=48", "--train-samples", "40",
            "--val-samples", "20", "--k", "5", "--output", str(out)]
    assert knn.main(argv) == 0
    res = json.loads(out.read_text())
    assert res["set"] == "data.sources.0.image_size=48" and res["n_train"] == 40 and res["n_test"] == 20
    assert res["train_data"] == "recipe:train" and res["eval_split"] == "val"
    capsys.readouterr()
    # ... and a changed model no longer matches the saved weights: one line, exit 2
    assert knn.main(["--checkpoint", str(run_dir), "--set", "model.encoder.mlp_ratio=2.0", "--output", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "does not match its config" in err and "--set" in err, err


def test_check_says_what_applies(run_dir, folders, capsys):
    def check(script, *extra):
        assert script.main(["--checkpoint", str(run_dir), "--check", *extra]) == 0
        return _last_json(capsys.readouterr().out)

    both = ["--train-data", str(folders / "train"), "--val-data", str(folders / "val")]
    assert check(probe, *both) == {"eval": "linear_probe", "applicable": True, "reason": ""}
    # the recipe's shape classes against colour folders: labels would be scored against the wrong classes
    other = check(probe, "--val-data", str(folders / "val"))
    assert other["applicable"] is False and "'red' only in the held-out data" in other["reason"], other
    assert check(dense)["applicable"] is True                                # synthetic_shapes has masks
    no_masks = check(dense, "--train-data", str(folders / "train"))
    assert no_masks["applicable"] is False and "no pixel masks" in no_masks["reason"]
    no_text = check(zero_shot)
    assert no_text["applicable"] is False and "no image-text objective" in no_text["reason"]
    # running what does not apply: one line, exit 2
    assert zero_shot.main(["--checkpoint", str(run_dir), "--output", os.devnull]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: zero_shot does not apply"), err


def test_dense_probe_on_the_runs_own_masks(run_dir, tmp_path, capsys):
    out = tmp_path / "dense.json"
    assert dense.main(["--checkpoint", str(run_dir), "--train-samples", "24", "--val-samples", "12",
                       "--l2", "1e-3", "--max-iter", "30", "--output", str(out)]) == 0
    res = json.loads(out.read_text())
    assert _last_json(capsys.readouterr().out) == res and _flat(res)
    assert res["primary"] == "miou" and res["grid"] == "8x8" and res["num_seg_classes"] == 11
    assert 0.0 <= res["fg_miou"] <= res["miou"] <= 1.0 and 0.0 <= res["pixel_acc"] <= 1.0
    assert res["n_train"] == 24 and res["n_test"] == 12


def test_zero_shot_and_retrieval_of_a_random_init_clip(folders, tmp_path, capsys):
    clip = os.path.join(REPO, "models", "clip_vit.json")
    out = tmp_path / "zs.json"
    argv = ["--random-init", "--config", clip, "--val-samples", "30", "--template", "a {name}",
            "--template", "a photo of a {name}", "--output", str(out)] + _sets(TINY_CLIP)
    assert zero_shot.main(argv) == 0
    res = json.loads(out.read_text())
    assert _last_json(capsys.readouterr().out) == res and _flat(res)
    assert res["primary"] == "zero_shot_acc" and res["objective"] == "clip" and res["n_prompts"] == 2
    assert res["num_classes"] == 10 and res["n_test"] == 30 and res["n_captions"] == 30
    assert all(0.0 <= res[f"{d}_r{k}"] <= 1.0 for d in ("i2t", "t2i") for k in (1, 5, 10))
    assert res["i2t_r1"] <= res["i2t_r5"] <= res["i2t_r10"] and "train_data" not in res
    # an image folder: class names from its folders, no captions -> zero-shot only
    assert zero_shot.main(argv[:-2] + ["--val-data", str(folders / "val"), "--output", str(out)]) == 0
    res = json.loads(out.read_text())
    assert res["num_classes"] == 3 and res["skipped"] == 1 and "i2t_r1" not in res and res["n_test"] == 12
