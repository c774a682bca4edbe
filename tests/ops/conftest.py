"""Markers for the op tests (also to be declared in pyproject.toml)."""


def pytest_configure(config):
    config.addinivalue_line("markers", "cuda_build: compiles the CUDA ops (needs nvcc; fails under CI=1 without)")
    config.addinivalue_line("markers", "gpu: needs a CUDA device; skipped without one")
