"""Property-based tests (hypothesis): whatever bytes a user hands the config loader, the shard readers or the
checkpoint reader, the answer is a result or the one-line error type of that input -- never another exception.
"""
import io
import json
import os
import tarfile
import tempfile

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from m3i_modular.training.checkpoint import read_tensor_file
from m3i_modular.recipe.config import apply_set, load_config
from m3i_modular.errors import ConfigError, DataError
from m3i_modular.recipe.sections import TrainConfig

# derandomized (the same examples in every CI run) and no example database written into the checkout
SETTINGS = settings(max_examples=60, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow])
JSON = st.recursive(st.none() | st.booleans() | st.integers(-10 ** 20, 10 ** 20) | st.floats() | st.text(max_size=8),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                    max_leaves=20)
KEYS = st.sampled_from(["model", "data", "train", "views", "optim", "schedule", "eval", "shared", "tokenizer",
                        "base", "imports", "description", "total_steps", "batch_size", "x"])


def _file(data: bytes, suffix: str) -> str:
    fd, path = tempfile.mkstemp(suffix=suffix)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    return path


def _load(data: bytes, suffix: str):
    path = _file(data, suffix)
    try:
        return load_config(path)
    except ConfigError:
        return None
    finally:
        os.remove(path)


@SETTINGS
@given(st.binary(max_size=1500), st.sampled_from([".json", ".yaml"]))
def test_config_loader_on_random_bytes(data, suffix):
    out = _load(data, suffix)
    assert out is None or isinstance(out, dict)


@SETTINGS
@given(st.dictionaries(KEYS, JSON, max_size=6))
def test_config_loader_on_random_json_objects(doc):
    out = _load(json.dumps(doc).encode(), ".json")
    assert out is None or isinstance(out, dict)


@SETTINGS
@given(st.dictionaries(st.sampled_from(["total_steps", "batch_size", "precision", "grad_accum", "clip_grad",
                                        "log_every", "save_every", "save_every_minutes", "max_bad_steps",
                                        "keep_last", "loggers", "device", "typo"]), JSON, max_size=6))
def test_train_section_on_random_values(section):
    try:
        TrainConfig.from_config(section)
    except ConfigError:
        pass


@SETTINGS
@given(st.text(max_size=40))
def test_set_overrides_on_random_text(assignment):
    cfg = {"train": {"total_steps": 3, "lr": 0.1, "name": "x", "on": True, "xs": [1, 2]}, "views": {"v": [{}]}}
    try:
        apply_set(cfg, assignment)
    except ConfigError:
        pass


# -- shards ---------------------------------------------------------------------------------------------------
def _jpeg() -> bytes:
    from PIL import Image
    out = io.BytesIO()
    Image.fromarray(np.full((8, 8, 3), 100, np.uint8)).save(out, format="JPEG")
    return out.getvalue()


def _tar_bytes() -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as t:
        for i in range(3):
            for ext, data in (("jpg", _jpeg()), ("cls", str(i).encode()), ("txt", b"a caption")):
                info = tarfile.TarInfo(f"{i:04d}.{ext}")
                info.size = len(data)
                t.addfile(info, io.BytesIO(data))
    return out.getvalue()


GOOD_TAR = _tar_bytes()


def _read_all(data: bytes) -> None:
    """Open the bytes as a shard source (lenient: allow_truncated) and read every sample."""
    from m3i_modular.data.sources.webdataset import WebDatasetShards
    d = tempfile.mkdtemp()
    path = os.path.join(d, "000000.tar")
    with open(path, "wb") as f:
        f.write(data)
    try:
        src = WebDatasetShards(shards=path, allow_truncated=True)
    except ConfigError:
        return
    for i in range(len(src)):
        try:
            item = src[i]
        except DataError:
            continue
        assert item["image"] is None or item["image"].dtype == torch.uint8


@SETTINGS
@given(st.binary(max_size=4096))
def test_shard_reader_on_random_bytes(data):
    _read_all(data)


@SETTINGS
@given(st.integers(0, len(GOOD_TAR)), st.lists(st.tuples(st.integers(0, len(GOOD_TAR) - 1), st.integers(0, 255)),
                                               max_size=8))
def test_shard_reader_on_cut_and_flipped_tars(cut, flips):
    data = bytearray(GOOD_TAR[:cut])
    for pos, value in flips:
        if pos < len(data):
            data[pos] = value
    _read_all(bytes(data))


@SETTINGS
@given(st.binary(max_size=300), st.binary(max_size=64), st.binary(max_size=64))
def test_token_shard_reader_on_random_files(header, bin_bytes, idx_bytes):
    from m3i_modular.data.sources.token_store import TokenShards
    d = tempfile.mkdtemp()
    for ext, data in ((".json", header), (".bin", bin_bytes), (".idx", idx_bytes)):
        with open(os.path.join(d, "shard-00000" + ext), "wb") as f:
            f.write(data)
    try:
        ts = TokenShards(d)
        for i in range(min(len(ts), 4)):
            ts[i]
    except DataError:
        pass


# -- checkpoints ----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def saved():
    buf = io.BytesIO()
    torch.save({"w": torch.arange(6.0), "step": torch.tensor(3)}, buf)
    return buf.getvalue()


@SETTINGS
@given(data=st.binary(max_size=2048))
def test_checkpoint_reader_on_random_bytes(data):
    path = _file(data, ".pt")
    try:
        read_tensor_file(path)
    except ConfigError:
        pass
    finally:
        os.remove(path)


def test_checkpoint_reader_on_cut_and_flipped_files(saved):
    @SETTINGS
    @given(st.integers(0, len(saved)), st.lists(st.tuples(st.integers(0, len(saved) - 1), st.integers(0, 255)),
                                                max_size=6))
    def check(cut, flips):
        data = bytearray(saved[:cut])
        for pos, value in flips:
            if pos < len(data):
                data[pos] = value
        path = _file(bytes(data), ".pt")
        try:
            out = read_tensor_file(path)
            assert isinstance(out, dict)
        except ConfigError:
            pass
        finally:
            os.remove(path)
    check()
