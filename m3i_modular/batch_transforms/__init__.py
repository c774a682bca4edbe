from . import mix_views, mlm_mask  # noqa: F401  (registration)
