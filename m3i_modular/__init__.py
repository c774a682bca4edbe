"""m3i_modular: pretraining models assembled from swappable components declared in JSON."""
__version__ = "0.1.0"
