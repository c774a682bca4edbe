"""Evaluation of frozen features: extraction, data selection (user data, stratified subsets), linear and
low-label probes, weighted k-NN, the dense probe (mIoU), zero-shot and retrieval (image and audio against
text), and the training-time monitor. The entry points live in finetune/ (run_*.py), their code in
m3i_modular/eval_cli/.

This package never imports m3i_modular.inference (which imports it): functions take a loaded model."""
from .dense_probe import dense_probe
from .features import (EvalData, build_split_source, extract_features, load_split, mean_pooled, patch_tokens,
                       read_split)
from .knn import knn_accuracy, knn_predict
from .linear_probe import linear_probe, low_label_probe
from .retrieval import paired_retrieval, recall_at_k, zero_shot_predict
from .sources import build_data_source, class_names, source_config
from .subsets import choose_subset, stratified_indices
from .transform import eval_transform, preprocess

__all__ = ["EvalData", "build_data_source", "build_split_source", "choose_subset", "class_names", "dense_probe",
           "eval_transform", "extract_features", "knn_accuracy", "knn_predict", "linear_probe", "load_split",
           "low_label_probe", "mean_pooled", "paired_retrieval", "patch_tokens", "preprocess", "read_split",
           "recall_at_k", "source_config", "stratified_indices", "zero_shot_predict"]
