"""The ops shipped with the package (scripts/build_ops.py builds these)."""
from typing import Dict

from .dcnv3.kernel import DCNV3_SPEC
from .loader import OpSpec


def known_ops() -> Dict[str, OpSpec]:
    return {DCNV3_SPEC.name: DCNV3_SPEC}
