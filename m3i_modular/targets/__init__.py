"""Targets: the distribution p(z_y | z_y hat) whose negative log is the loss (gaussian regression, boltzmann
cross-entropy, InfoNCE, soft boltzmann), one per file.

A component family: imports only interfaces, registry, errors, layers/ and runtime/."""
from . import boltzmann, gaussian, infonce, soft_boltzmann  # noqa: F401  (registration)
