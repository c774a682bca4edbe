"""DCNv3 (InternImage's deformable convolution v3): op, reference and module."""
from .kernel import DCNV3_SPEC, dcnv3, kernel_available
from .module import DCNv3
from .reference import dcnv3_reference, output_size

__all__ = ["DCNV3_SPEC", "DCNv3", "dcnv3", "dcnv3_reference", "kernel_available", "output_size"]
