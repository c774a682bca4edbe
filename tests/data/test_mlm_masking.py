"""mlm_mask: BERT's 80/10/10 split measured over many tokens, special ids never chosen or sampled,
whole-word masking keeps the pieces of a word together (WordPiece "##" and sentencepiece "▁" vocabs)."""
import pytest
import torch

from m3i_modular.batch_transforms.mlm_mask import MlmMask
from m3i_modular.errors import ConfigError

SPECIAL = [0, 1, 2, 3, 4]  # pad, unk, cls, sep, mask
MASK = 4


def test_80_10_10_split_over_many_tokens():
    torch.manual_seed(0)
    v = 1000
    t = MlmMask(mask_id=MASK, vocab_size=v, special_ids=SPECIAL, ratio=0.15)
    ids = torch.randint(5, v, (128, 512))
    out = t({"text": ids})
    pick, new = out["mlm_mask"], out["mlm_input"]
    assert torch.equal(out["text"], ids)  # the targets stay the original ids
    n = int(pick.sum())
    assert abs(n / ids.numel() - 0.15) < 0.01
    masked = float((new[pick] == MASK).sum()) / n
    changed = float(((new[pick] != MASK) & (new[pick] != ids[pick])).sum()) / n
    kept = float((new[pick] == ids[pick]).sum()) / n
    # a random draw equals the original with probability 1/995: the kept share is 0.1 + 0.1/995
    assert abs(masked - 0.8) < 0.02 and abs(changed - 0.1) < 0.02 and abs(kept - 0.1) < 0.02
    assert torch.equal(new[~pick], ids[~pick])  # unchosen positions are untouched


def test_special_ids_never_chosen_nor_sampled():
    torch.manual_seed(1)
    v = 12
    t = MlmMask(mask_id=MASK, vocab_size=v, special_ids=SPECIAL, ratio=0.5, replace_prob=0.0, random_prob=1.0)
    ids = torch.randint(0, v, (64, 64))  # about 40% of the positions hold special ids
    out = t({"text": ids})
    pick, new = out["mlm_mask"], out["mlm_input"]
    special = torch.isin(ids, torch.tensor(SPECIAL))
    assert not bool((pick & special).any())
    assert torch.equal(new[special], ids[special])
    drawn = new[pick & (new != ids)]
    assert drawn.numel() > 100
    assert not bool(torch.isin(drawn, torch.tensor(SPECIAL)).any())
    assert set(drawn.tolist()) == set(range(5, v))  # every ordinary id can be drawn


def test_every_sequence_predicts_something():
    torch.manual_seed(2)
    t = MlmMask(mask_id=MASK, vocab_size=50, special_ids=SPECIAL, ratio=0.01)
    ids = torch.randint(5, 50, (200, 6))
    ids[0] = 0  # all padding: nothing to predict
    pick = t({"text": ids})["mlm_mask"]
    assert not bool(pick[0].any()) and bool(pick[1:].any(1).all())


def _write_vocab(path, tokens):
    path.write_text("\n".join(tokens) + "\n", encoding="utf-8")
    return str(path)


def _check_whole_words(t, ids, starts):
    """starts: bool (B, L), True where a word begins. Every word is all chosen or all not."""
    out = t({"text": ids})
    pick = out["mlm_mask"]
    special = torch.isin(ids, torch.tensor(SPECIAL))
    word = torch.cumsum(starts.long(), 1)
    chosen_words = total_words = 0
    for b in range(ids.shape[0]):
        for w in word[b].unique().tolist():
            at = (word[b] == w) & ~special[b]
            if not bool(at.any()):
                continue
            total_words += 1
            vals = pick[b][at]
            assert bool(vals.all()) or not bool(vals.any()), (b, w, vals)
            chosen_words += int(vals.all())
    return chosen_words, total_words


@pytest.mark.parametrize("style", ["wordpiece", "sentencepiece"])
def test_whole_word_masks_all_pieces_together(tmp_path, style):
    torch.manual_seed(3)
    if style == "wordpiece":
        words = ["ka", "lo", "mi", "##ro", "##te", "##su"]
    else:
        words = ["\u2581ka", "\u2581lo", "\u2581mi", "ro", "te", "su"]
    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + words
    vocab = _write_vocab(tmp_path / "vocab.txt", tokens)
    t = MlmMask(mask_id=MASK, vocab_size=len(tokens), special_ids=SPECIAL, ratio=0.3, whole_word=True,
                vocab=vocab)
    b, n = 300, 24
    # sequences of words of 1-4 pieces: a word start (ids 5-7) then continuations (ids 8-10)
    ids = torch.zeros(b, n, dtype=torch.long)
    starts = torch.zeros(b, n, dtype=torch.bool)
    g = torch.Generator().manual_seed(0)
    for r in range(b):
        ids[r, 0], starts[r, 0] = 2, True
        i = 1
        while i < n - 1:
            pieces = int(torch.randint(1, 5, (1,), generator=g))
            starts[r, i] = True
            ids[r, i] = int(torch.randint(5, 8, (1,), generator=g))
            for j in range(i + 1, min(i + pieces, n - 1)):
                ids[r, j] = int(torch.randint(8, 11, (1,), generator=g))
            i += pieces
        ids[r, n - 1], starts[r, n - 1] = 3, True
    chosen, total = _check_whole_words(t, ids, starts)
    assert abs(chosen / total - 0.3) < 0.03  # the ratio counts words, not pieces
    # forced picks (ratio so small that most rows draw nothing) are whole words too
    t.ratio = 0.001
    _check_whole_words(t, ids, starts)


def test_bad_settings_are_config_errors():
    with pytest.raises(ConfigError):
        MlmMask(mask_id=MASK, vocab_size=10, ratio=1.5)
    with pytest.raises(ConfigError):
        MlmMask(mask_id=MASK, vocab_size=10, replace_prob=0.8, random_prob=0.3)
    with pytest.raises(ConfigError):
        MlmMask(mask_id=MASK, vocab_size=10, whole_word=True)
