"""The bad-input table: every case is one mistake a user can make, the entry point it is given to, and a
fragment of the one line it must answer with (exit code 2, nothing in the output directory created or
changed). tests/test_bad_inputs.py runs each case; `python tests/test_bad_inputs.py` prints the table
(case -> the line printed) for the issue note.

A case is (kind, name, setup, expect, watch): setup(tmp) writes the inputs under tmp and returns the command
line, e.g. ["pretrain.py", "--config", ...]; `watch` is the directory that must stay as it was ("run": the
--output-dir, "prior": a finished run given to --resume, or a path under tmp).

SKIPS are the bad inputs that are not fatal (one unreadable image among good ones, a bad row with
--on-bad-row skip): exit 0, the count printed, and recorded where the run keeps its numbers.
"""
import contextlib
import hashlib
import io
import json
import os
import pickle
import shutil
import sys
import tarfile
import wave
from dataclasses import dataclass
from typing import Callable, List

import numpy as np

from cli_utils import REPO, TINY_MAE, load_script, png_bomb

MAE = os.path.join(REPO, "models", "mae_vit.json")
BASE = TINY_MAE + ["train.total_steps=2", "train.save_every=1", "train.keep_last=2", "train.precision=fp32",
                   "train.device=cpu"]  # the memory check reads this machine's RAM, not a GPU's
# a finished run that --resume cases start from (made once per session, copied into each case)
PRIOR_SETS = BASE


@dataclass
class Case:
    kind: str
    name: str
    setup: Callable[[str], List[str]]
    expect: object  # a fragment of the line, or a tuple of fragments it must all hold
    watch: str = "run"


def sets(*extra: str, base=BASE) -> List[str]:
    return [a for s in list(base) + list(extra) for a in ("--set", s)]


def pretrain(tmp: str, *extra_sets: str, args=(), config=MAE) -> List[str]:
    return ["pretrain.py", "--config", config, *sets(*extra_sets), "--output-dir", os.path.join(tmp, "run"),
            *args]


def write(path: str, data, mode="w") -> str:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, mode) as f:
        f.write(data)
    return path


def recipe(tmp: str, text: str, name="r.json") -> str:
    return write(os.path.join(tmp, name), text)


def jpeg(path: str, size=20) -> str:
    from PIL import Image
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(np.full((size, size, 3), 120, np.uint8)).save(path)
    return path


def tar(path: str, members: dict) -> str:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with tarfile.open(path, "w") as t:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    return path


def jpeg_bytes() -> bytes:
    from PIL import Image
    out = io.BytesIO()
    Image.fromarray(np.full((20, 20, 3), 90, np.uint8)).save(out, format="JPEG")
    return out.getvalue()


def shard_source(tmp: str, shards: str) -> List[str]:
    src = json.dumps([{"type": "webdataset_shards", "weight": 1.0, "shards": shards}])
    return pretrain(tmp, f"data.sources={src}")


def prior(tmp: str) -> str:
    return os.path.join(tmp, "prior")


def resume(tmp: str, *extra_sets: str) -> List[str]:
    return ["pretrain.py", "--config", MAE, *sets("train.total_steps=4", *extra_sets), "--output-dir",
            prior(tmp), "--resume"]


def ckpt_file(tmp: str, step: int, name: str) -> str:
    return os.path.join(prior(tmp), "checkpoints", f"step_{step:08d}", name)


def damage(tmp: str, name: str, how: str, steps=(1, 2)) -> None:
    for step in steps:
        path = ckpt_file(tmp, step, name)
        data = open(path, "rb").read()
        new = {"truncate": data[:len(data) // 2], "random": os.urandom(len(data))}[how]
        write(path, new, "wb")


class Exploit:
    """A pickle that would create a file if it were ever unpickled with code execution."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def malicious(path: str, marker: str, *, archive: bool = False) -> str:
    """A plain pickle, or (archive) a torch.save zip archive whose pickle would call open()."""
    if archive:
        import torch
        torch.save({"model": Exploit(marker)}, path)
        return path
    with open(path, "wb") as f:
        pickle.dump({"model": Exploit(marker)}, f)
    return path


def rewrite_manifest(tmp: str, step: int) -> None:
    """Make the manifest agree with the (altered) files: the attacker controls the whole directory."""
    d = os.path.dirname(ckpt_file(tmp, step, "x"))
    man = json.load(open(os.path.join(d, "manifest.json")))
    for name in man["files"]:
        data = open(os.path.join(d, name), "rb").read()
        man["files"][name] = {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    write(os.path.join(d, "manifest.json"), json.dumps(man))


def wav(path: str, frames: int = 800, rate: int = 16000) -> str:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with wave.open(path, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(np.zeros(frames, np.int16).tobytes())
    return path


def _c(kind, name, expect, watch="run"):
    def deco(fn):
        CASES.append(Case(kind, name, fn, expect, watch))
        return fn
    return deco


CASES: List[Case] = []

# -- recipes ------------------------------------------------------------------------------------------------
_c("config", "negative dim", "model.encoder.dim: dim must be >= 1")(
    lambda t: pretrain(t, "model.encoder.dim=-64"))
_c("config", "zero heads", "model.encoder.heads: heads must be >= 1")(
    lambda t: pretrain(t, "model.encoder.heads=0"))
_c("config", "heads not dividing dim (encoder)", "model.encoder: encoder 'transformer' cannot be built")(
    lambda t: pretrain(t, "model.encoder.heads=3"))
_c("config", "heads not dividing dim (decoder)", "model.objectives.mae.decoder: decoder")(
    lambda t: pretrain(t, "model.objectives.mae.decoder.heads=3"))
_c("config", "image size not divisible by the patch", "not a multiple of patch_size")(
    lambda t: pretrain(t, "model.embedding.image_size=18"))
_c("config", "negative lr", "optim.lr: lr must be >= 0")(lambda t: pretrain(t, "optim.lr=-0.001"))
_c("config", "NaN lr", "optim.lr: lr must be a finite number")(lambda t: pretrain(t, "optim.lr=NaN"))
_c("config", "dim 1e9", "larger than torch can address")(
    lambda t: pretrain(t, "model.embedding.dim=1000000000", "model.encoder.dim=1000000000"))
_c("config", "dim 1e9 in the embedding alone", "the encoder takes 32-wide tokens, the embedding makes 1000000000")(
    lambda t: pretrain(t, "model.embedding.dim=1000000000"))
_c("config", "a model larger than this machine's memory", "more than the memory available on this machine")(
    lambda t: pretrain(t, "model.embedding.dim=1048576", "model.encoder.dim=1048576"))
_c("config", "embedding / encoder width mismatch", "model.encoder: the encoder takes 32-wide tokens")(
    lambda t: pretrain(t, "model.embedding.dim=48"))
_c("config", "view size != embedding image size", "views.view1: view 'view1' makes 24x24 images")(
    lambda t: pretrain(t, "views.view1.0.size=24"))
_c("config", "objective input naming a missing view", "model.objectives.mae.input: input 'view2'")(
    lambda t: pretrain(t, "model.objectives.mae.input=view2"))
_c("config", "objective target view that does not exist", "target_view 'labels'")(
    lambda t: pretrain(t, "model.objectives.mae.target_view=labels"))
_c("config", "total_steps 1e30", "train.total_steps: total_steps 1e+30")(
    lambda t: pretrain(t, "train.total_steps=1e30"))
_c("config", "total_steps 0", "train.total_steps: total_steps must be >= 1")(
    lambda t: pretrain(t, "train.total_steps=0"))
_c("config", "batch not splitting over grad_accum", "does not split over 1 ranks x grad_accum 3")(
    lambda t: pretrain(t, "train.grad_accum=3"))
_c("config", "drop_path 1.5", "drop_path must be in [0, 1)")(lambda t: pretrain(t, "model.encoder.drop_path=1.5"))
_c("config", "negative warmup", "schedule.warmup_steps: warmup_steps must be >= 0")(
    lambda t: pretrain(t, "schedule.warmup_steps=-5"))
_c("config", "max_bad_steps 0", "train.max_bad_steps: max_bad_steps must be >= 1")(
    lambda t: pretrain(t, "train.max_bad_steps=0"))
_c("config", "misspelt train key", "did you mean 'total_steps'")(lambda t: pretrain(t, "train.total_step=3"))
_c("config", "unknown precision", "did you mean 'bf16'")(lambda t: pretrain(t, "train.precision=bf61"))
_c("config", "unknown encoder type", "did you mean 'transformer'")(
    lambda t: pretrain(t, "model.encoder.type=transformr"))
_c("config", "--set with the wrong type", "expected int like the current value")(
    lambda t: pretrain(t, "train.batch_size=eight"))
_c("config", "empty data sources", "data.sources: data needs a non-empty 'sources' list")(
    lambda t: pretrain(t, "data.sources=[]"))
_c("config", "invalid JSON", "invalid JSON at line 2")(
    lambda t: ["pretrain.py", "--config", recipe(t, '{"base": "x.json",\n  "model": ,}\n'), "--output-dir",
               os.path.join(t, "run")])
_c("config", "YAML with a tab", "invalid YAML at line 3 column 1")(
    lambda t: ["pretrain.py", "--config", recipe(t, "train:\n  total_steps: 3\n\tbatch_size: 4\n", "r.yaml"),
               "--output-dir", os.path.join(t, "run")])
_c("config", "recipe file missing", "no such recipe file")(
    lambda t: ["pretrain.py", "--config", os.path.join(t, "nope.json"), "--output-dir", os.path.join(t, "run")])
_c("config", "base inheritance cycle", "'base' inheritance forms a cycle")(
    lambda t: ["pretrain.py", "--config", recipe(t, '{"base": "r.json", "model": {}}'), "--output-dir",
               os.path.join(t, "run")])
_c("config", "a recipe that is a list", "a recipe must be a JSON object")(
    lambda t: ["pretrain.py", "--config", recipe(t, "[1, 2]"), "--output-dir", os.path.join(t, "run")])
_c("config", "plugin module missing", "cannot import plugin 'no_such_lab.modules'")(
    lambda t: pretrain(t, args=["--import", "no_such_lab.modules"]))

# -- command line -------------------------------------------------------------------------------------------
_c("cli", "--stop-at -3", "argument --stop-at: must be a step >= 1, got -3")(
    lambda t: pretrain(t, args=["--stop-at", "-3"]))
_c("cli", "--stop-at abc", "expected a step number, got 'abc'")(lambda t: pretrain(t, args=["--stop-at", "abc"]))
_c("cli", "no --config", "the following arguments are required: --config")(
    lambda t: ["pretrain.py", "--output-dir", os.path.join(t, "run")])
_c("cli", "unknown flag", "unrecognized arguments: --epochs")(lambda t: pretrain(t, args=["--epochs", "3"]))
_c("cli", "--set without '='", "--set takes key=value")(
    lambda t: ["pretrain.py", "--config", MAE, "--set", "train.total_steps", "--output-dir", os.path.join(t, "run")])
_c("cli", "run directory with checkpoints, no --resume", "pass --resume to continue it", "prior")(
    lambda t: ["pretrain.py", "--config", MAE, *sets(), "--output-dir", prior(t)])
_c("cli", "--init-from a missing path", "no such file or directory")(
    lambda t: pretrain(t, args=["--init-from", os.path.join(t, "nope.pt")]))


@_c("cli", "--init-from that matches nothing", "none of its 1 tensors matches this model")
def _(t):
    import torch
    torch.save({"encoder.blocks.0.attn.qkv.weight": torch.zeros(3, 3)}, os.path.join(t, "other.pt"))
    return pretrain(t, args=["--init-from", os.path.join(t, "other.pt")])


@_c("cli", "--output-dir under a file", "Not a directory", "file/run")
def _(t):
    write(os.path.join(t, "file"), "x")
    return ["pretrain.py", "--config", MAE, *sets(), "--output-dir", os.path.join(t, "file", "run")]


# -- checkpoints --------------------------------------------------------------------------------------------
@_c("checkpoint", "--resume, model.pt truncated in every checkpoint", "no complete checkpoint", "prior")
def _(t):
    damage(t, "model.pt", "truncate")
    return resume(t)


@_c("checkpoint", "--resume, model.pt random bytes in every checkpoint", "does not match its sha256", "prior")
def _(t):
    damage(t, "model.pt", "random")
    return resume(t)


@_c("checkpoint", "--resume, manifest.json missing its entries", "unreadable manifest.json", "prior")
def _(t):
    for s in (1, 2):
        write(ckpt_file(t, s, "manifest.json"), "{}")
    return resume(t)


@_c("checkpoint", "--resume with another recipe's model", "is of another model: 'embedding.proj.weight' is "
    "[32, 3, 4, 4] there, [48, 3, 4, 4] here", "prior")
def _(t):
    return resume(t, "model.embedding.dim=48", "model.encoder.dim=48")


@_c("checkpoint", "--resume, trainer.pt a pickle that runs code", "it holds Python objects other than tensors",
    "prior")
def _(t):
    for s in (1, 2):
        malicious(ckpt_file(t, s, "trainer.pt"), os.path.join(t, "PWNED"), archive=True)
        rewrite_manifest(t, s)
    return resume(t)


@_c("checkpoint", "--init-from a truncated model.pt", "model.pt has")
def _(t):
    damage(t, "model.pt", "truncate", steps=(2,))
    return pretrain(t, args=["--init-from", os.path.join(prior(t), "checkpoints", "step_00000002")])


@_c("checkpoint", "--init-from random bytes", "cannot read tensors (not a torch.save archive")
def _(t):
    write(os.path.join(t, "w.pt"), os.urandom(4096), "wb")
    return pretrain(t, args=["--init-from", os.path.join(t, "w.pt")])


@_c("checkpoint", "--init-from a pickle that runs code", "a plain pickle, not a torch.save archive: refused")
def _(t):
    return pretrain(t, args=["--init-from", malicious(os.path.join(t, "evil.pt"), os.path.join(t, "PWNED"))])


@_c("checkpoint", "--init-from a torch.save archive that runs code", "it holds Python objects other than tensors")
def _(t):
    evil = malicious(os.path.join(t, "evil.pt"), os.path.join(t, "PWNED"), archive=True)
    return pretrain(t, args=["--init-from", evil])


@_c("checkpoint", "--init-from a foreign state dict", "unrecognised tensors")
def _(t):
    import torch
    torch.save({"fc.weight": torch.zeros(2, 2)}, os.path.join(t, "resnet.pt"))
    return pretrain(t, args=["--init-from", os.path.join(t, "resnet.pt")])


@_c("checkpoint", "eval --checkpoint with random-bytes model.pt", "does not match its sha256", "prior")
def _(t):
    damage(t, "model.pt", "random")
    return ["finetune/run_knn.py", "--checkpoint", prior(t), "--train-samples", "20", "--val-samples", "10"]


# -- image folders ------------------------------------------------------------------------------------------
def folder_source(t: str, root: str) -> List[str]:
    return pretrain(t, f'data.sources=[{{"type": "image_folder", "root": "{root}", "weight": 1}}]')


_c("image folder", "root missing", "nope' is not a folder")(lambda t: folder_source(t, os.path.join(t, "nope")))


@_c("image folder", "no class sub-folders", "has no class sub-folders")
def _(t):
    jpeg(os.path.join(t, "imgs", "a.jpg"))
    return folder_source(t, os.path.join(t, "imgs"))


@_c("image folder", "class folders without images", "hold no images")
def _(t):
    write(os.path.join(t, "imgs", "cat", "notes.txt"), "x")
    return folder_source(t, os.path.join(t, "imgs"))


@_c("image folder", "every image unreadable", "unreadable")
def _(t):
    for i in range(3):
        write(os.path.join(t, "imgs", "cat", f"{i}.jpg"), b"\xff\xd8 not a jpeg", "wb")
    return folder_source(t, os.path.join(t, "imgs"))


@_c("image folder", "preprocess images: no class folders", "has no class sub-folders", "out")
def _(t):
    jpeg(os.path.join(t, "imgs", "a.jpg"))
    return ["preprocess.py", "images", "--folder", os.path.join(t, "imgs"), "--output", os.path.join(t, "out")]


@_c("image folder", "preprocess images: every image unreadable", "none of the 2 input images could be read", "out")
def _(t):
    for i in range(2):
        write(os.path.join(t, "imgs", "cat", f"{i}.jpg"), b"GIF89a broken", "wb")
    return ["preprocess.py", "images", "--folder", os.path.join(t, "imgs"), "--output", os.path.join(t, "out"),
            "--workers", "1", "--no-progress"]


@_c("image folder", "preprocess images: output exists", "exists: pass --overwrite", "out")
def _(t):
    jpeg(os.path.join(t, "imgs", "cat", "a.jpg"))
    write(os.path.join(t, "out", "keep.txt"), "a previous output")
    return ["preprocess.py", "images", "--folder", os.path.join(t, "imgs"), "--output", os.path.join(t, "out")]


@_c("image folder", "preprocess images: list without the image column", "no 'image' column in the header", "out")
def _(t):
    return ["preprocess.py", "images", "--list", write(os.path.join(t, "pairs.tsv"), "path\tcaption\na.jpg\tx\n"),
            "--output", os.path.join(t, "out")]


# -- tar shards ---------------------------------------------------------------------------------------------
@_c("tar", "indexing a truncated tar", "is truncated", "shards")
def _(t):
    path = tar(os.path.join(t, "shards", "000000.tar"), {f"{i:04d}.jpg": jpeg_bytes() for i in range(4)})
    data = open(path, "rb").read()
    write(path, data[:len(data) // 2], "wb")
    return ["preprocess.py", "images", "--index", path]


@_c("tar", "a stale index over a truncated shard", "is truncated")
def _(t):
    from m3i_modular.preprocess.tar_writer import write_index
    path = tar(os.path.join(t, "shards", "000000.tar"), {f"{i:04d}.jpg": jpeg_bytes() for i in range(8)})
    write_index(path)
    data = open(path, "rb").read()
    write(path, data[:len(data) // 2], "wb")
    return shard_source(t, path)


@_c("tar", "a shard of random bytes", "not a readable tar shard")
def _(t):
    return shard_source(t, write(os.path.join(t, "s", "000000.tar"), os.urandom(3000), "wb"))


@_c("tar", "an empty (0-byte) shard", "not a readable tar shard")
def _(t):
    return shard_source(t, write(os.path.join(t, "s", "000000.tar"), b"", "wb"))


_c("tar", "a shard pattern matching nothing", "shard '")(
    lambda t: shard_source(t, os.path.join(t, "s", "{000000..000003}.tar")))


@_c("tar", "shards without images", "hold no image or audio samples")
def _(t):
    return shard_source(t, tar(os.path.join(t, "s", "000000.tar"), {"0001.txt": b"a caption only"}))


# -- text corpora -------------------------------------------------------------------------------------------
def vocab(t: str) -> str:
    return write(os.path.join(t, "vocab.txt"), "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nthe\ncat\n")


def text_cmd(t: str, corpus: str, *extra: str) -> List[str]:
    return ["preprocess.py", "text", "--input", corpus, "--tokenizer", vocab(t), "--output", os.path.join(t, "out"),
            "--workers", "1", "--no-progress", *extra]


_c("text", "preprocess text: empty corpus", "holds no text", "out")(
    lambda t: text_cmd(t, write(os.path.join(t, "c.txt"), "")))
_c("text", "preprocess text: blank lines only", "holds no text", "out")(
    lambda t: text_cmd(t, write(os.path.join(t, "c.txt"), "\n\n  \n")))
_c("text", "preprocess text: corpus missing", "nope.txt", "out")(lambda t: text_cmd(t, os.path.join(t, "nope.txt")))
_c("text", "preprocess text: non-UTF-8 corpus", "c.txt:2: not valid UTF-8", "out")(
    lambda t: text_cmd(t, write(os.path.join(t, "c.txt"), b"the cat\nthe \xff\xfe cat\n", "wb")))
_c("text", "preprocess text: JSONL line that is not JSON", "c.jsonl:2", "out")(
    lambda t: text_cmd(t, write(os.path.join(t, "c.jsonl"), '{"text": "the cat"}\n{"text": the}\n'),
                       "--format", "jsonl"))
_c("text", "preprocess text: tokenizer path missing", "tok", "out")(
    lambda t: ["preprocess.py", "text", "--input", write(os.path.join(t, "c.txt"), "the cat\n"), "--tokenizer",
               os.path.join(t, "tok"), "--output", os.path.join(t, "out"), "--no-progress"])
_c("text", "token shards folder missing", "no token shards here")(
    lambda t: ["pretrain.py", "--config", os.path.join(REPO, "models", "gpt2_mini.json"), "--set",
               f"data.sources.0.path={os.path.join(t, 'none')}", "--set", f"tokenizer.vocab={vocab(t)}",
               "--output-dir", os.path.join(t, "run")])


# -- tokenizer corpora --------------------------------------------------------------------------------------
def tok_cmd(t: str, corpus: str, *extra: str) -> List[str]:
    return ["preprocess.py", "tokenizer", "--input", corpus, "--output", os.path.join(t, "out"),
            "--vocab-size", "30", "--threads", "1", *extra]


_c("tokenizer", "non-UTF-8 corpus", "c.txt:2: not UTF-8", "out")(
    lambda t: tok_cmd(t, write(os.path.join(t, "c.txt"), b"the cat sat\n\xff\xfe\xfd on the mat\n" * 20, "wb")))
_c("tokenizer", "empty corpus", "holds no text", "out")(lambda t: tok_cmd(t, write(os.path.join(t, "c.txt"), "")))
_c("tokenizer", "vocabulary larger than the corpus allows", "--vocab-size", "out")(
    lambda t: tok_cmd(t, write(os.path.join(t, "c.txt"), "ab ab ab\n" * 10)))
_c("tokenizer", "corpus missing", "input file not found", "out")(lambda t: tok_cmd(t, os.path.join(t, "nope.txt")))
_c("tokenizer", "char tokenizer, non-UTF-8 corpus", "not UTF-8", "out")(
    lambda t: tok_cmd(t, write(os.path.join(t, "c.txt"), b"\xff\xfe abc\n", "wb"), "--type", "char"))

# -- audio --------------------------------------------------------------------------------------------------
_c("audio", "preprocess audio: folder without audio", "holds no", "out")(
    lambda t: ["preprocess.py", "audio", "--folder", os.path.dirname(write(os.path.join(t, "a", "x.txt"), "x")),
               "--output", os.path.join(t, "out")])


@_c("audio", "preprocess audio: every clip unreadable", "none of the 2 input clips could be read", "out")
def _(t):
    for i in range(2):
        write(os.path.join(t, "a", f"{i}.wav"), b"RIFF\x00\x00 not a wave", "wb")
    return ["preprocess.py", "audio", "--folder", os.path.join(t, "a"), "--output", os.path.join(t, "out")]


@_c("audio", "preprocess audio: negative sample rate", "--sample-rate must be >= 0", "out")
def _(t):
    wav(os.path.join(t, "a", "0.wav"))
    return ["preprocess.py", "audio", "--folder", os.path.join(t, "a"), "--output", os.path.join(t, "out"),
            "--sample-rate", "-1"]


# -- data in, nothing silently lost (issue 28) -------------------------------------------------------------
def colour_folders(root: str, classes, per_class: int = 4, size: int = 16) -> str:
    """root/<class>/<i>.png, a solid colour per class (the same name always gets the same colour)."""
    from PIL import Image
    for name in classes:
        os.makedirs(os.path.join(root, name), exist_ok=True)
        colour = np.frombuffer(hashlib.sha256(name.encode()).digest()[:3], np.uint8)
        for i in range(per_class):
            Image.fromarray(np.broadcast_to(colour, (size, size, 3)).copy()).save(os.path.join(root, name, f"{i}.png"))
    return root


def images_cmd(t: str, *args: str) -> List[str]:
    return ["preprocess.py", "images", *args, "--output", os.path.join(t, "out"), "--workers", "1", "--no-progress"]


def pairs(t: str, data) -> str:
    jpeg(os.path.join(t, "a.jpg"))
    return write(os.path.join(t, "pairs.tsv"), data, "wb" if isinstance(data, bytes) else "w")


_c("config", "JSON recipe with a key given twice", "duplicate key 'lr' in optim (lines 2 and 3)")(
    lambda t: ["pretrain.py", "--config", recipe(t, f'{{"base": "{MAE}",\n "optim": {{"lr": 0.001,\n  "lr": 0.01}}}}'),
               *sets(), "--output-dir", os.path.join(t, "run")])
_c("config", "YAML recipe with a key given twice", "duplicate key 'total_steps' (lines 3 and 4)")(
    lambda t: ["pretrain.py", "--config", recipe(t, f"base: {MAE}\ntrain:\n  total_steps: 3\n  total_steps: 4\n",
                                                 "r.yaml"), *sets(), "--output-dir", os.path.join(t, "run")])
_c("config", "negative max_image_pixels", "data.sources[0].max_image_pixels: max_image_pixels must be a whole number")(
    lambda t: pretrain(t, 'data.sources=[{"type": "image_folder", "root": "%s", "max_image_pixels": -5}]'
                       % colour_folders(os.path.join(t, "imgs"), ["a"])))
_c("image folder", "a decompression bomb (97 KB, 9500x9500)", "9500x9500 = 90,250,000 pixels is over the limit")(
    lambda t: folder_source(t, os.path.dirname(os.path.dirname(png_bomb(os.path.join(t, "imgs", "a", "b.png"), 9500)))))
_c("image list", "caption column missing", "no 'caption' column in the header (columns found: 'image', 'text')", "out")(
    lambda t: images_cmd(t, "--list", pairs(t, "image\ttext\na.jpg\ta red square\n")))
_c("image list", "invalid UTF-8", "pairs.tsv:3: not valid UTF-8 (byte 0xff at column 11)", "out")(
    lambda t: images_cmd(t, "--list", pairs(t, b"image\tcaption\na.jpg\tfine\na.jpg\tthe \xff cat\n")))
_c("image list", "a tab inside an unquoted caption", "pairs.tsv:2: 3 field(s) where the header names 2", "out")(
    lambda t: images_cmd(t, "--list", pairs(t, "image\tcaption\na.jpg\ta red\tsquare on grass\n")))
_c("image list", "every image over --max-pixels", "20x20 = 400 pixels is over the limit of 100", "out")(
    lambda t: images_cmd(t, "--list", pairs(t, "image\tcaption\na.jpg\tx\n"), "--max-pixels", "100"))
_c("image list", "--max-pixels -1", "--max-pixels: max_image_pixels must be a whole number >= 0", "out")(
    lambda t: images_cmd(t, "--list", pairs(t, "image\tcaption\na.jpg\tx\n"), "--max-pixels", "-1"))


def token_shards(t: str) -> str:
    """BERT-format token shards of a toy corpus, written with its 79-token vocabulary."""
    from m3i_modular.data.tokenizers import tokenizer_from_path
    from m3i_modular.preprocess.synthetic_text import write_corpus
    from m3i_modular.preprocess.text_writer import write_text_shards
    corpus, vocab_file = write_corpus(os.path.join(t, "toy"), documents=40)
    out = os.path.join(t, "toy", "shards")
    write_text_shards([corpus], out, tokenizer_from_path(vocab_file), fmt="bert", progress=False)
    return out


def bert(t: str, *extra_sets: str) -> List[str]:
    shards = token_shards(t)
    return ["pretrain.py", "--config", os.path.join(REPO, "models", "bert_mini.json"),
            *sets(f"data.sources.0.path={shards}", "train.device=cpu", *extra_sets, base=[]),
            "--output-dir", os.path.join(t, "run")]


_c("text", "shards of a 79-token tokenizer, a 7-token tokenizer.vocab",
   ("written with another tokenizer (wordpiece, 79 tokens", "than the run's \"tokenizer\" (wordpiece, 7 tokens"))(
    lambda t: bert(t, f"tokenizer.vocab={vocab(t)}"))
_c("text", "model vocab_size smaller than the shards' ids",
   ("model.embedding.word.vocab_size is 50", "the vocab_size 79 the token shards record in", "shard-00000.json"))(
    lambda t: bert(t, f"tokenizer.vocab={os.path.join(t, 'toy', 'vocab.txt')}", "model.embedding.word.vocab_size=50"))


def knn(t: str, train: str, val: str, *extra: str) -> List[str]:
    return ["finetune/run_knn.py", "--random-init", "--config", MAE, *sets(base=TINY_MAE), "--device", "cpu",
            "--train-data", train, "--val-data", val, "--output", os.path.join(t, "knn.json"), *extra]


_c("eval", "train classes {a, b}, val classes {b, c}", "'c' only in the held-out data", "knn.json")(
    lambda t: knn(t, colour_folders(os.path.join(t, "tr"), "ab"), colour_folders(os.path.join(t, "va"), "bc")))
_c("eval", "one class on the training side", "the training data holds 1 class ('a') over 4 labelled samples",
   "knn.json")(lambda t: knn(t, *[colour_folders(os.path.join(t, "one"), "a")] * 2))
_c("eval", "k larger than the training set", "k = 20 is larger than the 8 labelled training samples", "knn.json")(
    lambda t: knn(t, *[colour_folders(os.path.join(t, "ab"), "ab")] * 2))
_c("eval", "k-NN monitor with k larger than its training samples",
   "eval.k: k = 20 is larger than the 8 training samples the k-NN monitor reads")(
    lambda t: pretrain(t, 'eval={"knn_every": 1, "knn_train": 8, "knn_val": 8, "k": 20}'))


@dataclass
class SkipCase:
    """A bad sample or row that is skipped, not fatal: exit 0, `printed` in the output, `check(tmp)` finds the
    count recorded (metrics, manifest or results)."""
    kind: str
    name: str
    setup: Callable[[str], List[str]]
    printed: str
    check: Callable[[str], None]


SKIPS: List[SkipCase] = []


def _s(kind, name, printed, check):
    def deco(fn):
        SKIPS.append(SkipCase(kind, name, fn, printed, check))
        return fn
    return deco


def _manifest(t: str) -> dict:
    return json.load(open(os.path.join(t, "out", "manifest.json")))


def _bomb_skipped(t: str) -> None:
    m = _manifest(t)
    assert m["samples"] == 2 and m["skipped_count"] == 1, m
    assert "9500x9500 = 90,250,000 pixels is over the limit" in m["skipped"][0]["error"]


@_s("image folder", "preprocess images: a decompression bomb among good images", "(1 unreadable input(s) skipped)",
    _bomb_skipped)
def _(t):
    colour_folders(os.path.join(t, "imgs"), ["a"], per_class=2)
    png_bomb(os.path.join(t, "imgs", "a", "bomb.png"), 9500)
    return images_cmd(t, "--folder", os.path.join(t, "imgs"))


def _row_skipped(t: str) -> None:
    m = _manifest(t)
    assert m["samples"] == 2 and m["bad_rows_count"] == 1 and m["bad_rows"][0]["line"] == 3, m


_s("image list", "--on-bad-row skip with an invalid UTF-8 row", "1 bad row(s) of the list skipped", _row_skipped)(
    lambda t: images_cmd(t, "--list", pairs(t, b"image\tcaption\na.jpg\tfine\na.jpg\tthe \xff cat\na.jpg\tok\n"),
                         "--on-bad-row", "skip"))


def _run_skips(t: str) -> None:
    with open(os.path.join(t, "run", "metrics.jsonl")) as f:
        last = [json.loads(line) for line in f][-1]
    assert last["data_skipped_total"] >= 1, last


@_s("image folder", "pretrain: an image over max_image_pixels among good ones", "unreadable sample(s) skipped and "
    "replaced over the run", _run_skips)
def _(t):
    root = colour_folders(os.path.join(t, "imgs"), ["a"], per_class=3)
    colour_folders(os.path.join(t, "big"), ["a"], per_class=1, size=40)
    shutil.move(os.path.join(t, "big", "a", "0.png"), os.path.join(root, "a", "big.png"))
    return pretrain(t, 'data.sources=[{"type": "image_folder", "root": "%s", "max_image_pixels": 900}]' % root)


def _eval_skip(t: str) -> None:
    res = json.load(open(os.path.join(t, "knn.json")))
    assert res["skipped"] == 1 and res["n_test"] == 8, res


@_s("eval", "k-NN: a held-out image over max_image_pixels", '"skipped": 1', _eval_skip)
def _(t):
    val = colour_folders(os.path.join(t, "va"), "ab")
    colour_folders(os.path.join(t, "big"), ["a"], per_class=1, size=40)
    shutil.move(os.path.join(t, "big", "a", "0.png"), os.path.join(val, "a", "big.png"))
    src = json.dumps({"type": "image_folder", "root": val, "max_image_pixels": 900})
    return knn(t, colour_folders(os.path.join(t, "tr"), "ab", per_class=6), src, "--k", "5")


# -- running a case -----------------------------------------------------------------------------------------
def snapshot(path: str) -> dict:
    """{relative path: sha256} of every file under `path` (None when it does not exist)."""
    if not os.path.exists(path):
        return None
    if os.path.isfile(path):
        return {"": hashlib.sha256(open(path, "rb").read()).hexdigest()}
    out = {}
    for root, dirs, files in os.walk(path):
        for f in files:
            p = os.path.join(root, f)
            out[os.path.relpath(p, path)] = hashlib.sha256(open(p, "rb").read()).hexdigest()
        for d in dirs:
            out[os.path.relpath(os.path.join(root, d), path) + "/"] = ""
    return out


_SCRIPTS = {}


def entry(script: str):
    if script == "pretrain.py":
        from m3i_modular.cli import main
        return main
    if script not in _SCRIPTS:
        _SCRIPTS[script] = load_script(script).main
    return _SCRIPTS[script]


def call(argv: List[str]):
    """(exit code, stdout, stderr) of one command line, run in this process from the repository root."""
    out, err = io.StringIO(), io.StringIO()
    cwd = os.getcwd()
    os.chdir(REPO)
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
            try:
                rc = entry(argv[0])(argv[1:])
            except SystemExit as e:  # argparse
                rc = e.code
            except Exception as e:  # a traceback: what the suite exists to rule out
                rc = "traceback"
                print(f"Traceback ... {type(e).__name__}: {str(e)[:300]}", file=err)
    finally:
        os.chdir(cwd)
    return rc, out.getvalue(), err.getvalue()


def run(case: Case, tmp: str, prior_run: str):
    """(exit code, stderr, watched directory before, after) of one case, run in this process."""
    if prior_run:
        shutil.copytree(prior_run, prior(tmp))
    argv = case.setup(tmp)
    watched = prior(tmp) if case.watch == "prior" else os.path.join(tmp, case.watch)
    before = snapshot(watched)
    rc, _, err = call(argv)
    return rc, err, before, snapshot(watched)


def expected(case: Case) -> tuple:
    """The fragments the case's one line must hold."""
    return case.expect if isinstance(case.expect, tuple) else (case.expect,)


def make_prior(tmp: str) -> str:
    from m3i_modular.cli import main
    out = os.path.join(tmp, "prior_run")
    with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
        rc = main(["--config", MAE, *sets(), "--output-dir", out])
    assert rc == 0
    return out


def table(rows) -> str:
    lines = ["| kind | case | exit | the line printed |", "|---|---|---|---|"]
    for case, rc, line in rows:
        lines.append(f"| {case.kind} | {case.name} | {rc} | `{line.replace('|', '/')}` |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit("run tests/test_bad_inputs.py")
