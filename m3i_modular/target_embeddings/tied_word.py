"""The word embedding as the candidate set (MLM / causal LM): candidates = the vocabulary matrix, tied to
the input embedding through "@embedding.word", plus an output bias that belongs to this target side.

mode "masked": index = the original ids batch[view], valid where batch[mask_key] (written by mlm_mask).
mode "next":   index = the id one position later (causal LM); the last position and padding are invalid.
"""
import torch
from torch import nn

from ..interfaces import Borrowed, TargetOut
from ..registry import TARGET_EMBEDDINGS, config_error


@TARGET_EMBEDDINGS.register("tied_word")
class TiedWordTargets(nn.Module):
    def __init__(self, *, word: nn.Module, mode: str = "masked", mask_key: str = "mlm_mask", bias: bool = True,
                 pad_id: int = -1):
        super().__init__()
        if mode not in ("masked", "next"):
            raise config_error(f"mode must be masked or next, got {mode!r}", "mode")
        if not isinstance(getattr(word, "weight", None), torch.Tensor):
            raise config_error("'word' must name a word embedding, e.g. \"@embedding.word\"", "word")
        # a reference, not a submodule: the weight is saved (and optimised) once, with the embedding
        self._word = Borrowed("tied word embedding", word)
        self.mode, self.mask_key, self.pad_id = mode, mask_key, pad_id
        vocab, self.dim = word.weight.shape
        self.bias = nn.Parameter(torch.zeros(vocab)) if bias else None

    @property
    def word(self) -> nn.Module:
        """The input word embedding whose weight is the candidate set."""
        return self._word.get()

    def forward(self, batch: dict, *, view: str = "text") -> TargetOut:
        ids = batch[view]
        if self.mode == "masked":
            if self.mask_key not in batch:
                raise KeyError(f"batch has no '{self.mask_key}': put an mlm_mask batch transform in the model")
            index, valid = ids, batch[self.mask_key]
        else:
            index = torch.cat([ids[:, 1:], ids[:, -1:]], dim=1)
            valid = torch.ones_like(ids, dtype=torch.bool)
            valid[:, -1] = False
            if self.pad_id >= 0:
                valid &= index != self.pad_id
        present = batch.get("present", {}).get(view)
        if present is not None:
            valid = valid & present[:, None]
        return TargetOut(valid=valid, candidates=self.word.weight, bias=self.bias, index=index)
