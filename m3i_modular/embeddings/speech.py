"""`speech`: fbank frames (B, T, n_mels) -> 1-D tokens (B, T / 2^layers, dim) through a conv subsampler.

Each of `layers` blocks is a 3x3 conv with stride 2 over (time, frequency) and a GELU (the Conformer /
ESPnet Conv2dSubsampling front end); padding 1 makes token i the summary of frames [i*k, (i+1)*k), k =
2^layers = `frames_per_token`, which is what `frame_mask` and the `stacked_frames` target assume. A linear
map takes channels x remaining frequency bins to `dim`, then 1-D positions are added (sin-cos or learned).
The tokens have no grid; `Tokens.pos` carries the position part so a masked token keeps its position.
"""
from typing import Optional

import torch
from torch import nn

from ..layers.positions import sincos_1d
from ..registry import EMBEDDINGS, config_error
from ..interfaces import Tokens


@EMBEDDINGS.register("speech")
class SpeechEmbedding(nn.Module):
    def __init__(self, *, n_mels: int, dim: int, channels: int = 0, layers: int = 2, pos: str = "sincos",
                 max_tokens: int = 1024):
        super().__init__()
        if layers < 1:
            raise config_error(f"layers must be >= 1, got {layers}", "layers")
        if pos not in ("sincos", "learned", "none"):
            raise config_error(f"pos must be sincos, learned or none, got '{pos}'", "pos")
        if n_mels < 1 or dim < 1:
            raise config_error(f"n_mels and dim must be >= 1, got {n_mels} and {dim}", "n_mels")
        self.dim, self.n_mels, self.max_tokens = dim, n_mels, max_tokens
        self.frames_per_token = 2 ** layers
        channels = channels or dim
        convs, c_in, freq = [], 1, n_mels
        for _ in range(layers):
            convs += [nn.Conv2d(c_in, channels, kernel_size=3, stride=2, padding=1), nn.GELU()]
            c_in, freq = channels, (freq + 1) // 2
        self.conv = nn.Sequential(*convs)
        self.proj = nn.Linear(channels * freq, dim)
        if pos == "learned":
            self.pos_embed = nn.Parameter(torch.zeros(1, max_tokens, dim))
            nn.init.trunc_normal_(self.pos_embed, std=0.02)
        elif pos == "sincos":
            self.register_buffer("pos_embed", sincos_1d(torch.arange(max_tokens).float(), dim).unsqueeze(0),
                                 persistent=False)
        else:
            self.pos_embed = None

    def forward(self, feats: torch.Tensor, tokens: Optional[Tokens] = None) -> Tokens:
        if feats.ndim != 3 or feats.shape[-1] != self.n_mels:
            raise ValueError(f"speech embedding takes fbank features (B, T, {self.n_mels}), got "
                             f"{tuple(feats.shape)}: check fbank's num_mel_bins against n_mels")
        x = self.conv(feats.unsqueeze(1))                    # (B, C, T', F')
        x = self.proj(x.permute(0, 2, 1, 3).flatten(2))      # (B, T', C * F') -> (B, T', dim)
        n = x.shape[1]
        pos = None
        if self.pos_embed is not None:
            if n > self.max_tokens:
                raise ValueError(f"{n} speech tokens exceed max_tokens {self.max_tokens}: raise max_tokens or "
                                 f"crop fewer frames")
            pos = self.pos_embed[:, :n].to(x.dtype)
            x = x + pos
        return Tokens(x=x, pos=pos)
