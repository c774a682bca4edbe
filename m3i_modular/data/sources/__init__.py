"""Sources: map-style datasets of raw samples (image, caption, label, audio, token ids), registered in
DATASETS. Importing this package registers the built-in ones."""
from . import image_folder, synthetic_audio, synthetic_shapes, token_shards, webdataset  # noqa: F401  (registration)
