"""Helpers shared by the tests: run the real CLIs on tiny recipes."""
import json
import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# A tiny MAE: every CLI recipe test starts from the real recipe file and shrinks it with --set.
TINY_MAE = ["model.embedding.image_size=16", "model.embedding.dim=32", "model.encoder.dim=32",
            "model.encoder.layers=2", "model.encoder.heads=2",
            "model.objectives.mae.decoder.dim=32", "model.objectives.mae.decoder.layers=1",
            "model.objectives.mae.decoder.heads=2",
            "data.sources.0.image_size=16", "data.sources.0.num_samples=256",
            "views.view1.0.size=16", "train.batch_size=8", "train.num_workers=0", "train.progress=false"]


def run_cli(script, *args, env=None, timeout=600, check=False):
    e = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=REPO)
    e.update(env or {})
    proc = subprocess.run([sys.executable, os.path.join(REPO, script), *args], capture_output=True, text=True,
                          cwd=REPO, env=e, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"{script} {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    return proc


def load_script(relpath):
    """Import a script (scripts/*.py, finetune/*.py) as a module, to call its main(argv) in-process."""
    import importlib.util
    name = os.path.splitext(os.path.basename(relpath))[0]
    spec = importlib.util.spec_from_file_location(name, os.path.join(REPO, relpath))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def read_metrics(run_dir):
    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        return [json.loads(line) for line in f]



def png_bomb(path, side=10000):
    """A valid grey PNG of side x side pixels that is ~100 KB on disk (zeros compress 1000:1): decoded in full it
    would take side**2 bytes (1e8 for 10000). Written row by row, so making it costs no such memory."""
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    z = zlib.compressobj(9)
    row = b"\0" * (side + 1)  # filter byte + side grey pixels
    idat = b"".join(z.compress(row) for _ in range(side)) + z.flush()
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b""))
    return str(path)
