"""Value rules every component's keys get, by name, in registry.check_kwargs: sizes are positive, counts are not
negative, drop rates and probabilities lie in [0, 1], and no number is NaN or infinite. Rules between keys
(heads dividing dim, image size and patch) stay in the components' constructors, whose ValueErrors the builder
turns into one config-error line too (registry.build)."""
from typing import Any, Optional

# sizes and counts that must be >= 1
POSITIVE = {"dim", "heads", "patch_size", "image_size", "in_chans", "vocab_size", "num_classes", "max_length",
            "seq_length", "n_mels", "num_mel_bins", "frames_per_token", "queries", "pos_dim", "points", "group",
            "max_tokens", "num_segments", "num_samples", "block", "top_k", "k", "size", "depths", "groups",
            "kernel_size", "batch_size", "ref_batch"}
# counts and strengths where 0 means none (or "the default")
NON_NEGATIVE = {"layers", "depth", "hidden", "channels", "projector_hidden", "predictor_hidden", "projector_layers",
                "predictor_layers", "neck_dim", "warmup_steps", "sample_rate", "weight_decay", "lr",
                "second_moment_weight", "head_scale", "time_masks", "freq_masks", "time_width", "freq_width",
                "max_retries", "epoch_size"}
# rates: [0, 1)
RATE = {"drop_path", "dropout", "attn_drop", "proj_drop", "label_smoothing"}
# probabilities and fractions: [0, 1]
PROBABILITY = {"p", "label_fraction", "caption_fraction", "min_factor", "replace_prob", "random_prob"}
# strictly positive reals
POSITIVE_REAL = {"mlp_ratio", "temperature", "eps", "max_logit_scale"}


def _numbers(value: Any):
    if isinstance(value, bool):
        return []
    if isinstance(value, (int, float)):
        return [value]
    if isinstance(value, (list, tuple)):
        return [v for v in value if isinstance(v, (int, float)) and not isinstance(v, bool)]
    return []


def value_problem(key: str, value: Any) -> Optional[str]:
    """What is wrong with `value` for a key named `key` (None: nothing this module knows)."""
    for v in _numbers(value):
        if v != v or v in (float("inf"), float("-inf")):
            return f"{key} must be a finite number, got {v}"
        if key in POSITIVE and v < 1:
            return f"{key} must be >= 1, got {v}"
        if key in NON_NEGATIVE and v < 0:
            return f"{key} must be >= 0, got {v}"
        if key in RATE and not 0 <= v < 1:
            return f"{key} must be in [0, 1), got {v}"
        if key in PROBABILITY and not 0 <= v <= 1:
            return f"{key} must be in [0, 1], got {v}"
        if key in POSITIVE_REAL and not v > 0:
            return f"{key} must be > 0, got {v}"
    return None
