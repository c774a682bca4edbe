"""Dynamic masking for masked language modelling (BERT), as a batch transform: a fresh mask every step.

Of the `ratio` share of maskable tokens chosen (never padding or special ids), `replace_prob` become
[MASK], `random_prob` a random token and the rest stay as they are (BERT's 80/10/10). With `whole_word`
the choice is made per word: every piece of a chosen word is masked (a piece continues a word when the
vocab marks it, "##x" in WordPiece; in a sentencepiece vocab a piece without the leading "▁").
Writes batch[output] (the model's input ids) and batch[mask_key] (bool, True = predict this position);
batch[input] keeps the original ids, the MLM targets. Draws from the global torch RNG (seeded per rank).
"""
from typing import List

import torch
from torch import nn

from ..registry import BATCH_TRANSFORMS, config_error


def continuation_table(vocab: str) -> torch.Tensor:
    """bool (V,): token i continues the previous token's word."""
    try:
        with open(vocab, encoding="utf-8") as f:
            tokens = [line.rstrip("\n").rstrip("\r").split("\t")[0] for line in f]
    except OSError as e:
        raise config_error(f"cannot read vocab '{vocab}' for whole-word masking ({e.strerror})", "vocab")
    spm = any(t.startswith("\u2581") for t in tokens)
    if spm:
        return torch.tensor([bool(t) and not t.startswith("\u2581") and not t.startswith("<") for t in tokens])
    return torch.tensor([t.startswith("##") for t in tokens])


@BATCH_TRANSFORMS.register("mlm_mask")
class MlmMask(nn.Module):
    def __init__(self, *, mask_id: int, vocab_size: int, special_ids: List[int] = (), input: str = "text",
                 output: str = "mlm_input", mask_key: str = "mlm_mask", ratio: float = 0.15,
                 replace_prob: float = 0.8, random_prob: float = 0.1, whole_word: bool = False, vocab: str = ""):
        super().__init__()
        if not 0.0 < ratio < 1.0:
            raise config_error(f"ratio must be in (0, 1), got {ratio}", "ratio")
        if replace_prob < 0 or random_prob < 0 or replace_prob + random_prob > 1.0:
            raise config_error("replace_prob and random_prob must be >= 0 and sum to at most 1", "random_prob")
        if whole_word and not vocab:
            raise config_error("whole_word masking needs 'vocab' (the tokenizer's vocab file)", "vocab")
        self.mask_id, self.vocab_size, self.input, self.output = mask_id, vocab_size, input, output
        self.mask_key, self.ratio = mask_key, ratio
        self.replace_prob, self.random_prob = replace_prob, random_prob
        self.register_buffer("special", torch.tensor(sorted(set(special_ids)), dtype=torch.long), persistent=False)
        allowed = torch.ones(vocab_size, dtype=torch.bool, device="cpu")  # real even when built on meta
        allowed[[i for i in set(special_ids) if 0 <= i < vocab_size]] = False
        # random replacements avoid special ids (a random [PAD] would read as padding)
        self.register_buffer("allowed", allowed.nonzero().flatten(), persistent=False)
        cont = continuation_table(vocab) if whole_word else torch.zeros(0, dtype=torch.bool)
        self.register_buffer("continues", cont, persistent=False)
        self.whole_word = whole_word

    def choose(self, ids: torch.Tensor) -> torch.Tensor:
        """bool (B, L): the positions to predict."""
        maskable = ~torch.isin(ids, self.special)
        if not self.whole_word:
            word = torch.arange(ids.shape[1], device=ids.device).expand_as(ids)  # each token is a word
            pick = (torch.rand(ids.shape, device=ids.device) < self.ratio) & maskable
        else:
            cont = self.continues[ids.clamp(max=len(self.continues) - 1)] & maskable
            word = torch.cumsum((~cont).long(), dim=1)  # word number of each position
            draw = torch.rand(ids.shape[0], ids.shape[1] + 1, device=ids.device) < self.ratio
            pick = torch.gather(draw, 1, word) & maskable
        # at least one prediction per sequence that has a maskable token keeps the loss defined; the
        # forced one is the first maskable word, all of its pieces
        none = ~pick.any(1) & maskable.any(1)
        if bool(none.any()):
            first = maskable.float().argmax(1, keepdim=True)
            forced = (word == torch.gather(word, 1, first)) & maskable
            pick = pick | (forced & none[:, None])
        return pick

    def forward(self, batch: dict) -> dict:
        ids = batch[self.input]
        pick = self.choose(ids)
        u = torch.rand(ids.shape, device=ids.device)
        to_mask = pick & (u < self.replace_prob)
        to_random = pick & (u >= self.replace_prob) & (u < self.replace_prob + self.random_prob)
        out = ids.clone()
        out[to_mask] = self.mask_id
        draw = torch.randint(len(self.allowed), (int(to_random.sum()),), device=ids.device)
        out[to_random] = self.allowed[draw]
        return dict(batch, **{self.output: out, self.mask_key: pick})
