"""Encoders (the rest of f_theta): tokens -> z_x (transformer, InternImage on the DCNv3 op of ops/), one per
file.

A component family: imports only interfaces, registry, errors, layers/, ops/ and runtime/."""
from . import intern_image, transformer  # noqa: F401  (registration)
