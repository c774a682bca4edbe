from . import mix_views, mixup_cutmix, mlm_mask  # noqa: F401  (registration)
