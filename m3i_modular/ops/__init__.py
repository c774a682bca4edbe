"""Custom operators: compiled kernels with a pure-PyTorch reference beside each (see ops/loader.py)."""
