"""Views: named pipelines of registered transforms and maskers that turn a raw sample into model inputs in
the DataLoader workers, and the batch pipeline (sources -> views -> batch dict)."""
from . import audio_transforms, maskers, transforms  # noqa: F401  (registration)
