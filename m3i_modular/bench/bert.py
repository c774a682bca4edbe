"""Our BERT MLM training step against TencentPretrain's, at BERT-mini size by default (4 layers x 256, 4 heads,
FFN 1024, sequence 128, batch 16, vocabulary 30522: TencentPretrain's models/bert/mini_config.json).

Reference: a TencentPretrain checkout given by --tencentpretrain PATH (never part of this repository), built
from its own code: its pretrain.py's argument parser and load_hyperparam read its mini config, its
init_model / init_optimizer build the model (MLM + sentence prediction targets, tied weights) and its AdamW
with the warm-up schedule, and its BertTrainer.forward_propagation runs the step, then backward, optimizer,
scheduler and zero_grad as its Trainer.train does. Ours: models/bert_mini.json resized to the same shape
(BERT's post-norm, tied vocabulary, 80/10/10 dynamic masking on the device, sentence-order head with a pooler
like TencentPretrain's), our Trainer.train_step. Both see fixed random sequences (data loading is not timed),
15% of positions to predict, in one process, alternating, medians; the ratio is our tokens/s over theirs.

    python scripts/benchmark.py bert --tencentpretrain /work/tp
    python scripts/benchmark.py bert --tencentpretrain /work/tp --variant fused:optim.fused=true
    python scripts/benchmark.py bert --no-reference --layers 2 --dim 64 --heads 2 --vocab 1000   # ours only
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import sys

import torch

from . import common as bc
from ..recipe.config import load_config
from ..runtime.distributed import DistEnv
from ..training.flops import step_flops
from ..run import build_optim, build_run
from ..training.trainer import Trainer

SPECIAL = 5          # ids below this are never drawn as tokens (our recipe's special ids 0..4)


def parse(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tencentpretrain", metavar="PATH", help="a TencentPretrain checkout (its root directory)")
    p.add_argument("--no-reference", action="store_true", help="ours and its variants only")
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--dim", type=int, default=256)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--vocab", type=int, default=30522)
    p.add_argument("--seq", type=int, default=128)
    p.add_argument("--batch", type=int, default=16)
    bc.add_timing_args(p, repeats=20, warmup=3)
    p.add_argument("--csv", default="results/benchmark_bert.csv")
    a = p.parse_args(argv)
    if not a.no_reference and not a.tencentpretrain:
        p.error("--tencentpretrain PATH is required (or --no-reference to time ours alone)")
    return a


def data(a, device, seed=0):
    """Token ids (no padding, no special ids), two segments, sentence-order labels, and TencentPretrain's
    view of them: masked input, MLM targets (0 = not predicted), segments 1 / 2."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(SPECIAL, a.vocab, (a.batch, a.seq), generator=g)
    seg = (torch.arange(a.seq) >= a.seq // 2).long().expand(a.batch, -1).contiguous()
    sop = torch.randint(0, 2, (a.batch,), generator=g)
    pick = torch.rand(a.batch, a.seq, generator=g) < 0.15
    tp_src = torch.where(pick, torch.full_like(ids, 103), ids)
    tp_tgt = torch.where(pick, ids, torch.zeros_like(ids))
    ours = {"text": ids, "segments": seg, "sop_label": sop, "index": torch.arange(a.batch)}
    tp = [tp_src, tp_tgt, sop, seg + 1]
    return ({k: v.to(device) for k, v in ours.items()}, [t.to(device) for t in tp])


def our_sets(a) -> list:
    d = a.dim
    return [f"model.embedding.word.vocab_size={a.vocab}", f"model.embedding.word.dim={d}",
            "model.embedding.position.max_length=512", f"model.embedding.position.dim={d}",
            f"model.embedding.segment.dim={d}", f"model.embedding.norm.dim={d}",
            f"model.encoder.layers={a.layers}", f"model.encoder.heads={a.heads}", f"model.encoder.dim={d}",
            f"model.batch_transforms.0.vocab_size={a.vocab}",
            f"train.batch_size={a.batch}", f"train.precision={a.precision}", "train.loggers=[]",
            "train.progress=false", "train.num_workers=0", "train.clip_grad=0.0"]


def ours(a, device, batch, sets=()):
    cfg = load_config(os.path.join(bc.ROOT, "models", "bert_mini.json"), overrides=our_sets(a) + list(sets))
    cfg["model"]["objectives"]["sop"]["decoder"] = {"type": "cls_pooler"}  # TencentPretrain's sp head shape
    cfg.pop("tokenizer")  # ids come from the benchmark, not from a vocabulary file
    run = build_run(cfg, with_data=False)
    opt, _ = build_optim(run)
    trainer = Trainer(model=run.model, optimizer=opt, schedule=None, dataset=None, collate=None, train=run.train,
                      env=DistEnv(device=device), config={}, output_dir=os.devnull)
    flops = step_flops(run.model, batch, batch_size=a.batch).per_step
    trainer.model.train()
    step = bc.with_runtime(lambda: trainer.train_step([batch]), run.train)
    step.model = run.model  # for experiments that change a part of it (m3i_modular.bench.bert is imported)
    return step, flops


def _load(path: str, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def tencentpretrain(a, device, batch):
    """TencentPretrain's own args, model, optimizer, scheduler and BERT step."""
    root = os.path.abspath(a.tencentpretrain)
    sys.path.insert(0, root)
    here = os.getcwd()
    os.chdir(root)  # TencentPretrain reads models/special_tokens_map.json relative to its root
    try:
        return _tencentpretrain(a, device, batch, root)
    finally:
        os.chdir(here)


def _tencentpretrain(a, device, batch, root):
    import tencentpretrain.trainer as tp_trainer
    captured = {}
    real = tp_trainer.train_and_validate
    tp_trainer.train_and_validate = lambda args: captured.setdefault("args", args)
    saved = sys.argv
    sys.argv = ["pretrain.py", "--config_path", os.path.join(root, "models/bert/mini_config.json"),
                "--vocab_path", os.path.join(root, "models/google_uncased_en_vocab.txt"),
                "--output_model_path", os.devnull, "--batch_size", str(a.batch),
                "--total_steps", "100000", "--learning_rate", "1e-4"]
    try:
        _load(os.path.join(root, "pretrain.py"), "tp_pretrain").main()
    finally:
        sys.argv, tp_trainer.train_and_validate = saved, real
    args = captured["args"]
    for k, v in (("hidden_size", a.dim), ("emb_size", a.dim), ("feedforward_size", 4 * a.dim),
                 ("heads_num", a.heads), ("layers_num", a.layers)):
        setattr(args, k, v)   # the mini config's shape unless the flags change it
    from tencentpretrain.utils import str2tokenizer
    args.tokenizer = str2tokenizer[args.tokenizer](args)
    args.vocab = args.tokenizer.vocab
    if len(args.vocab) != a.vocab:
        raise SystemExit(f"TencentPretrain's vocabulary has {len(args.vocab)} ids; pass --vocab {len(args.vocab)}")
    # what its trainer.worker does before training, CPU or one GPU
    tp_trainer.set_seed(args.seed)
    args.logger = tp_trainer.init_logger(args)
    args.local_rank = device.index if device.type == "cuda" else None
    tp_trainer.init_env(args)
    model, _ = tp_trainer.init_model(args)
    model = model.to(device).train()
    opt, sched, _ = tp_trainer.init_optimizer(args, model)
    bert = tp_trainer.BertTrainer(args)

    def step():
        with bc.autocast(device, a.precision):
            loss = bert.forward_propagation(batch, model)
        loss.backward()
        opt.step()
        sched.step()
        model.zero_grad()
    return step, model


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    a = parse(argv)
    device = bc.timing_device(a)
    batch, tp_batch = data(a, device)
    contestants, flops, notes = {}, {}, {}
    if not a.no_reference:
        contestants["tencentpretrain"], tp_model = tencentpretrain(a, device, tp_batch)
        notes["tencentpretrain"] = f"{os.path.abspath(a.tencentpretrain)}: BertTrainer step, its AdamW + scheduler"
    contestants["ours"], flops["ours"] = ours(a, device, batch)
    for v in a.variant:
        name, _, sets = v.partition(":")
        contestants[f"ours+{name}"], flops[f"ours+{name}"] = ours(a, device, batch, sets.split(","))
        notes[f"ours+{name}"] = sets
    times = bc.alternate(contestants, repeats=a.repeats, warmup=a.warmup, device=device)
    bc.report("bert", times, reference="ours" if a.no_reference else "tencentpretrain",
              per_step=a.batch * a.seq, unit="tokens/s", device=device, precision=a.precision, csv_path=a.csv,
              command="python scripts/benchmark.py bert " + " ".join(argv), flops=flops,
              peak=bc.peaks(contestants, device, a.precision), notes=notes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
