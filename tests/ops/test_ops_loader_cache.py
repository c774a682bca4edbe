"""Generic op loader: cache keys, env overrides, and clear errors without a build."""
import warnings

import pytest
import torch

from m3i_modular.ops import loader
from m3i_modular.ops.dcnv3 import dcnv3, kernel
from m3i_modular.ops.loader import OpBuildError, OpSpec


def spec_in(tmp_path, text="int x;"):
    src = tmp_path / "src" / "my_op.cpp"
    src.parent.mkdir(exist_ok=True)
    src.write_text(text)
    return OpSpec(name="my_op", sources=(str(src),))


def test_cache_key_follows_sources_arch_and_env(tmp_path, monkeypatch):
    monkeypatch.setenv("M3I_OPS_CACHE", str(tmp_path / "cache"))
    spec = spec_in(tmp_path)
    first = loader.library_path(spec, "9.0")
    assert first.parent.parent == tmp_path / "cache" and first.name == "my_op.so"
    assert loader.library_path(spec, "9.0") == first
    assert loader.library_path(spec, "8.0") != first
    (tmp_path / "src" / "my_op.h").write_text("// a header beside the source counts")
    second = loader.library_path(spec, "9.0")
    assert second != first
    spec_in(tmp_path, "int y;")
    assert loader.library_path(spec, "9.0") != second


def test_load_without_build_names_the_fix(tmp_path, monkeypatch):
    monkeypatch.setenv("M3I_OPS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("TORCH_CUDA_ARCH_LIST", "9.0")
    with pytest.raises(OpBuildError, match="scripts/build_ops.py"):
        loader.load(spec_in(tmp_path), build_if_missing=False)


def test_cuda_home_without_toolkit_is_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("CUDA_HOME", str(tmp_path))
    with pytest.raises(OpBuildError, match="set CUDA_HOME"):
        loader.cuda_home()


def test_cpu_tensors_never_build_or_load(monkeypatch):
    def boom(*a, **k):
        raise AssertionError("loader called for CPU tensors")

    monkeypatch.setattr(kernel, "load", boom)
    x = torch.randn(1, 4, 4, 8)
    off = torch.zeros(1, 4, 4, 2 * 9 * 2)
    mask = torch.full((1, 4, 4, 2 * 9), 1 / 9)
    out = dcnv3(x, off, mask, 3, 3, 1, 1, 1, 1, 1, 1, 2, 4, 1.0)
    assert out.shape == x.shape


def test_unavailable_kernel_warns_once(monkeypatch):
    calls = []

    def fail(*a, **k):
        calls.append(1)
        raise OpBuildError("no toolkit here")

    monkeypatch.setattr(kernel, "load", fail)
    monkeypatch.setattr(kernel, "_state", {"tried": False, "ok": False, "reason": ""})
    with pytest.warns(UserWarning, match="no toolkit here"):
        assert kernel.kernel_available() is False
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert kernel.kernel_available() is False
    assert len(calls) == 1
