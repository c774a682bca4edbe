"""`stacked_frames`: the masked-frame regression target of a speech token = the k fbank frames it subsampled,
stacked into one vector of k * n_mels (k = the speech embedding's frames_per_token), optionally normalised
per token (MAE's per-patch normalisation, carried over to frames)."""
import torch
from torch import nn

from ..errors import DataError
from ..interfaces import TargetOut
from ..registry import TARGET_EMBEDDINGS, config_error


def stack_frames(feats: torch.Tensor, frames_per_token: int) -> torch.Tensor:
    """(B, T, n_mels) -> (B, T / k, k * n_mels); row i holds frames i*k .. i*k + k - 1 in time order."""
    b, t, f = feats.shape
    if t % frames_per_token:
        raise DataError(f"{t} frames do not split into tokens of {frames_per_token} frames; make crop_frames' "
                        f"frames a multiple of {frames_per_token}")
    return feats.reshape(b, t // frames_per_token, frames_per_token * f)


@TARGET_EMBEDDINGS.register("stacked_frames")
class StackedFrames(nn.Module):
    def __init__(self, *, frames_per_token: int, n_mels: int, normalize: bool = True, eps: float = 1e-6):
        super().__init__()
        if frames_per_token < 1 or n_mels < 1:
            raise config_error(f"frames_per_token and n_mels must be >= 1, got {frames_per_token} and {n_mels}",
                               "frames_per_token")
        self.k, self.n_mels, self.normalize, self.eps = frames_per_token, n_mels, normalize, eps
        self.dim = frames_per_token * n_mels

    def forward(self, batch: dict, *, view: str) -> TargetOut:
        feats = batch["views"][view]
        if feats.ndim != 3 or feats.shape[-1] != self.n_mels:
            raise DataError(f"stacked_frames expects view '{view}' as fbank features (B, T, {self.n_mels}), got "
                            f"{tuple(feats.shape)}")
        t = stack_frames(feats.float(), self.k)
        if self.normalize:
            t = (t - t.mean(-1, keepdim=True)) / (t.var(-1, keepdim=True, unbiased=True) + self.eps).sqrt()
        present = batch.get("present", {}).get("audio")
        valid = torch.ones(t.shape[0], dtype=torch.bool, device=t.device) if present is None \
            else present.to(t.device)
        return TargetOut(valid=valid, value=t)
