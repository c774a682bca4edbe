"""Selectors: which tokens of an encoded input an objective reads (`select: "all"`, the query records and
the needs an objective gathers). The mixing roles (`a`, `b`, `both`) live beside mix_views.

A component family like the others: imports only interfaces, registry, errors and layers/."""
from . import selection  # noqa: F401  (registers the core selectors)
