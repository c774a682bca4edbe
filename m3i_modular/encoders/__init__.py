from . import intern_image, transformer  # noqa: F401  (registration)
