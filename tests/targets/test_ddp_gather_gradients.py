import importlib.util
import os
import subprocess
import sys

import pytest
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
WORKER = os.path.join(HERE, "ddp_infonce_worker.py")


def _worker():
    spec = importlib.util.spec_from_file_location("ddp_infonce_worker", WORKER)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.distributed
@pytest.mark.timeout(180)
def test_two_ranks_equal_one_process_on_the_global_batch(tmp_path):
    from safetensors.torch import load_file
    one = _worker().grads(0, 1)
    out = tmp_path / "grads.safetensors"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                           WORKER, str(out)], env=env, cwd=ROOT, capture_output=True, text=True, timeout=170)
    assert proc.returncode == 0, proc.stderr[-3000:]
    two = load_file(str(out))
    assert set(two) == set(one)
    # the text tower and the image head only get the other rank's share of the gradient through the gather
    for name in ("objectives.text.target_embedding.proj.weight", "objectives.text.decoder.head.0.weight",
                 "objectives.text.target.log_scale", "objectives.inter_view.decoder.out.weight",
                 "encoder.blocks.0.attn.qkv.weight"):
        assert name in one, name
    for name, g in one.items():
        assert torch.allclose(two[name], g, atol=1e-6, rtol=1e-4), name
