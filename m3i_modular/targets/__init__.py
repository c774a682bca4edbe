from . import boltzmann, gaussian, infonce  # noqa: F401  (registration)
