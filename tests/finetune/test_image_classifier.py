"""finetune/run_image_classifier.py: a known answer (a linearly separable toy of 4 solid-colour classes reaches
100% top-1 after fine-tuning a tiny pretrained MAE), training through the pretraining trainer (metrics.jsonl,
checkpoints, --resume that recomputes nothing), layer-wise lr decay as param_groups, and user mistakes."""
import json
import os
import sys

import pytest
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests"))

from cli_utils import load_script, read_metrics, run_cli  # noqa: E402

from m3i_modular.recipe.config import load_config  # noqa: E402
from m3i_modular.eval.finetune import finetune_recipe, layer_decay_rules, topk_accuracy  # noqa: E402
from m3i_modular.recipe.model import build_model  # noqa: E402
from m3i_modular.training.optim import build_optimizer  # noqa: E402
from m3i_modular.recipe.sections import OptimConfig  # noqa: E402

PLUGIN = os.path.join(HERE, "solid_colours.py")
TINY = ["train.total_steps=3", "train.batch_size=8", "train.num_workers=0", "train.precision=fp32",
        "train.progress=false", "train.save_every=0", "data.sources.0.num_samples=64",
        "model.encoder.layers=2", "model.encoder.dim=32", "model.embedding.dim=32"]
TOY = ["--import", PLUGIN, "--train-data", '{"type": "solid_colours", "num_samples": 256}',
       "--val-data", '{"type": "solid_colours", "split": "val", "num_samples": 200}']
FT = ["--steps", "40", "--batch-size", "16", "--lr", "1e-2", "--warmup-steps", "5", "--num-workers", "0",
      "--precision", "fp32", "--ft-set", "train.progress=false"]


def _sets(items):
    return [a for s in items for a in ("--set", s)]


@pytest.fixture(scope="module")
def mae_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("mae") / "run"
    run_cli("pretrain.py", "--config", "models/mae_vit.json", *_sets(TINY), "--output-dir", str(out), check=True)
    return str(out)


def test_separable_toy_reaches_100_percent_through_the_trainer(mae_run, tmp_path):
    out = tmp_path / "ft"
    proc = run_cli("finetune/run_image_classifier.py", "--checkpoint", mae_run, *TOY, *FT,
                   "--output-dir", str(out), check=True)
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["finetune_top1"] == 1.0 and result["finetune_top5"] == 1.0 and result["n_val"] == 200
    assert result["finetune_steps"] == 40 and result["num_classes"] == 4 and result["model"] == "checkpoint"
    assert result["primary"] == "finetune_top1" and result["val_subset"] == "all"
    assert json.load(open(out / "finetune.json")) == result
    assert "init-from" in proc.stderr and "loaded 28 tensors" in proc.stderr  # embedding + 2 blocks + norm
    # the pretraining trainer ran it: metrics.jsonl, a checkpoint, the resolved recipe
    rows = read_metrics(str(out))
    assert rows[-1]["step"] == 40 and "classify_loss" in rows[-1]
    assert os.path.isfile(out / "checkpoints" / "latest")
    recipe = json.load(open(out / "finetune_recipe.json"))
    assert recipe["model"]["batch_transforms"][0]["type"] == "mixup_cutmix"
    assert [r["match"] for r in recipe["optim"]["param_groups"]] == [
        "embedding.*", "encoder.blocks.0.*", "encoder.blocks.1.*"]

    # --resume on a finished run recomputes nothing: no new training rows, the same score
    again = run_cli("finetune/run_image_classifier.py", "--checkpoint", mae_run, *TOY, *FT,
                    "--output-dir", str(out), "--resume", check=True)
    assert json.loads(again.stdout.strip().splitlines()[-1])["finetune_top1"] == 1.0
    assert len(read_metrics(str(out))) == len(rows)
    # without --resume the run is refused; with other flags --resume is refused too
    assert run_cli("finetune/run_image_classifier.py", "--checkpoint", mae_run, *TOY, *FT,
                   "--output-dir", str(out)).returncode == 2
    other = run_cli("finetune/run_image_classifier.py", "--checkpoint", mae_run, *TOY, *FT, "--mixup", "0.2",
                    "--output-dir", str(out), "--resume")
    assert other.returncode == 2 and "differ" in other.stderr and len(other.stderr.strip().splitlines()) == 1


def test_interrupted_finetuning_resumes_where_it_stopped(mae_run, tmp_path):
    """A run killed after its step-20 checkpoint continues from there (the trainer's --resume)."""
    out = tmp_path / "ft"
    keep = ["--save-every", "20", "--ft-set", "train.keep_last=3"]
    args = ["--checkpoint", mae_run, *TOY, *FT, *keep, "--output-dir", str(out)]
    full = tmp_path / "full"
    first = run_cli("finetune/run_image_classifier.py", "--checkpoint", mae_run, *TOY, *FT, *keep,
                    "--output-dir", str(full), check=True)
    # simulate the interruption: keep only the step-20 checkpoint of a copy of the finished run
    import shutil
    shutil.copytree(full, out)
    ckpts = out / "checkpoints"
    for d in os.listdir(ckpts):
        if d.startswith("step_") and d != "step_00000020":
            shutil.rmtree(ckpts / d)
    (ckpts / "latest").write_text("step_00000020\n")
    proc = run_cli("finetune/run_image_classifier.py", *args, "--resume", check=True)
    assert "resuming from step 20" in proc.stderr
    res, ref = (json.loads(p.stdout.strip().splitlines()[-1]) for p in (proc, first))
    assert res["finetune_steps"] == 40 and res["finetune_top1"] == ref["finetune_top1"]
    # exact resume: the continued run's last logged loss equals the uninterrupted one's
    assert read_metrics(str(out))[-1]["loss"] == read_metrics(str(full))[-1]["loss"]


def test_random_init_baseline(tmp_path):
    out = tmp_path / "rand"
    base = ["--random-init", "--config", "models/supervised_vit.json", *TOY, "--steps", "2", "--batch-size", "8",
            "--num-workers", "0", "--ft-set", "train.progress=false", "--set", "model.encoder.layers=2"]
    proc = run_cli("finetune/run_image_classifier.py", *base, "--output-dir", str(out), check=True)
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    assert res["model"] == "random_init" and res["finetune_steps"] == 2 and 0.0 <= res["finetune_top1"] <= 1.0
    recipe = json.load(open(out / "finetune_recipe.json"))  # --set reached the source recipe's tower
    assert recipe["model"]["encoder"]["layers"] == 2 and len(recipe["optim"]["param_groups"]) == 3


def test_user_mistakes_are_one_line_and_write_nothing(tmp_path, capsys):
    main = load_script("finetune/run_image_classifier.py").main
    base = ["--random-init", "--config", os.path.join(ROOT, "models", "supervised_vit.json")]
    for bad in (["--random-init", "--steps", "2"],                                 # no --config
                ["--checkpoint", str(tmp_path / "nothing")],                      # no checkpoint there
                base + ["--layer-decay", "0"],
                base + ["--steps", "0"],
                base + ["--set", "model.encoder.layerz=2"],
                base + ["--train-data", str(tmp_path / "no")]):
        assert main(bad + ["--output-dir", str(tmp_path / "bad")]) == 2, bad
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and err.startswith("error:"), (bad, err)
        assert not os.path.exists(tmp_path / "bad")


def test_layer_decay_param_groups_follow_depth():
    src = load_config(os.path.join(ROOT, "models", "supervised_vit.json"))
    recipe = finetune_recipe(src, num_classes=10, train_source={"type": "synthetic_shapes"}, steps=10,
                             batch_size=8, lr=2.56e-2, layer_decay=0.5)
    model = build_model(recipe["model"], seed=0)
    opt = build_optimizer(model, OptimConfig.from_config(recipe["optim"]), batch_size=8)   # lr 2.56e-2 * 8 / 256 = 8e-4
    mult = {}
    for g in opt.param_groups:
        for p in g["params"]:
            mult[id(p)] = g["lr_mult"]
    named = dict(model.named_parameters())
    assert mult[id(named["embedding.proj.weight"])] == 0.5 ** 5              # 4 blocks: embedding d^(4+1)
    for i in range(4):
        assert mult[id(named[f"encoder.blocks.{i}.mlp.fc1.weight"])] == 0.5 ** (4 - i)
    assert mult[id(named["encoder.norm.weight"])] == 1.0
    assert mult[id(named["objectives.classify.target_embedding.weight"])] == 1.0
    assert layer_decay_rules(["encoder.blocks.0"], 1.0) == []
    assert all(abs(g["lr"] - 8e-4 * g["lr_mult"]) < 1e-12 for g in opt.param_groups)


def test_topk_caps_k_at_the_class_count():
    logits = torch.tensor([[3.0, 2.0, 1.0], [0.0, 1.0, 2.0]])
    labels = torch.tensor([1, 2])
    assert topk_accuracy(logits, labels) == {"top1": 0.5, "top5": 1.0}


def test_ddp_two_ranks_match_one_process(mae_run, tmp_path):
    """torchrun 2 x B/2 = 1 x B through the same trainer (mixing and drop-path off: they draw per rank)."""
    import subprocess
    args = ["--checkpoint", mae_run, *TOY, *FT, "--steps", "6", "--mixup", "0", "--cutmix", "0",
            "--drop-path", "0"]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=ROOT)
    losses = {}
    for n in (1, 2):
        out = tmp_path / f"ranks{n}"
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={n}",
               os.path.join(ROOT, "finetune", "run_image_classifier.py"), *args, "--output-dir", str(out)]
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env, timeout=600)
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert json.load(open(out / "checkpoints" / "step_00000006" / "meta.json"))["world_size"] == n
        losses[n] = [r["loss"] for r in read_metrics(str(out))]
    assert losses[1] == pytest.approx(losses[2], rel=1e-4, abs=1e-5)
