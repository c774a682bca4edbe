from . import boltzmann, gaussian, infonce, soft_boltzmann  # noqa: F401  (registration)
