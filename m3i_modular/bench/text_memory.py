"""Peak memory of `preprocess.py text` on a 50 MB and a 500 MB generated corpus (not run in CI).
Streaming tokenisation should keep the two peaks within 20% of each other.

    python scripts/benchmark.py text-memory --workdir /tmp/pp_bench [--workers 2]
"""
import argparse
import json
import os
import subprocess
import sys

from ..preprocess.synthetic_text import write_corpus

# the checkout: preprocess.py, run as a subprocess
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def grow(path: str, target_bytes: int) -> None:
    """Repeat the synthetic corpus until the file holds `target_bytes`."""
    src = path + ".unit"
    os.replace(path, src)
    with open(src, "rb") as f:
        unit = f.read()
    with open(path + ".tmp", "wb") as out:
        written = 0
        while written < target_bytes:
            out.write(unit)
            written += len(unit)
    os.replace(path + ".tmp", path)
    os.remove(src)


def peak_mb(cmd) -> float:
    """Peak RSS of the command and its children (a fresh wrapper process per measurement)."""
    code = ("import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True); "
            "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
    out = subprocess.run([sys.executable, "-c", code] + cmd, check=True, capture_output=True, text=True)
    return int(out.stdout.strip().splitlines()[-1]) / 1024.0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workdir", required=True)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--sizes-mb", type=int, nargs="+", default=[50, 500])
    args = p.parse_args(argv)
    results = {}
    for mb in args.sizes_mb:
        d = os.path.join(args.workdir, f"{mb}mb")
        corpus, vocab = write_corpus(d, documents=20000, seed=mb)
        grow(corpus, mb << 20)
        out = os.path.join(d, "shards")
        cmd = [sys.executable, os.path.join(ROOT, "preprocess.py"), "text", "--input", corpus, "--format", "bert",
               "--tokenizer", vocab, "--output", out, "--workers", str(args.workers), "--no-progress", "--overwrite"]
        results[f"{mb}MB"] = round(peak_mb(cmd), 1)
    peaks = list(results.values())
    results["ratio"] = round(max(peaks) / min(peaks), 3)
    results["within_20_percent"] = results["ratio"] < 1.2
    print(json.dumps(results))
    return 0 if results["within_20_percent"] else 1


if __name__ == "__main__":
    sys.exit(main())
