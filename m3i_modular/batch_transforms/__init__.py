"""Batch transforms: cross-sample operations the model runs on the batch before the online tower
(mixing two images' views, MLM masking, mixup / cutmix), one per file with its registration decorator.

A component family: imports only interfaces, registry, errors, layers/ and runtime/."""
from . import mix_views, mixup_cutmix, mlm_mask  # noqa: F401  (registration)
