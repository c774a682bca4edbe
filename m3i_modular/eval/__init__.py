"""Evaluation of frozen features: extraction, linear probe, weighted k-NN, and the training-time monitor."""
from .features import build_split_source, extract_features, load_split, mean_pooled
from .knn import knn_accuracy, knn_predict
from .linear_probe import linear_probe
from .transform import eval_transform, preprocess

__all__ = ["build_split_source", "eval_transform", "extract_features", "knn_accuracy", "knn_predict",
           "linear_probe", "load_split", "mean_pooled", "preprocess"]
