from . import boltzmann, gaussian  # noqa: F401  (registration)
