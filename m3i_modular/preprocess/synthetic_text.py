"""An embedded synthetic text corpus (no download): documents about one topic each, written with a tiny
grammar. Local syntax is regular (a bigram model learns it) while the nouns and verbs of a document all
come from its topic, so a model that reads the context beats a bigram model, and a sentence's topic is a
text-classification label.
"""
from __future__ import annotations

import os
import random
from typing import List, Tuple

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
_CONS, _VOWELS = "bdfgklmnprstvz", "aeiou"


def _words(rng: random.Random, n: int, taken: set) -> List[str]:
    out = []
    while len(out) < n:
        w = "".join(rng.choice(_CONS) + rng.choice(_VOWELS) for _ in range(rng.randint(2, 3)))
        if w not in taken:
            taken.add(w)
            out.append(w)
    return out


class ToyGrammar:
    def __init__(self, *, topics: int = 4, nouns: int = 12, verbs: int = 4, adjectives: int = 6, seed: int = 0):
        rng = random.Random(seed)
        taken = {"the", "a", "and"}
        self.topics = topics
        self.nouns = [_words(rng, nouns, taken) for _ in range(topics)]
        self.verbs = [_words(rng, verbs, taken) for _ in range(topics)]
        self.adjectives = _words(rng, adjectives, taken)

    def vocab(self) -> List[str]:
        words = ["the", "a", "and", "."] + self.adjectives
        for t in range(self.topics):
            words += self.nouns[t] + self.verbs[t]
        return SPECIALS + words

    def sentence(self, rng: random.Random, topic: int) -> str:
        n, v = self.nouns[topic], self.verbs[topic]
        if rng.random() < 0.5:
            return f"the {rng.choice(self.adjectives)} {rng.choice(n)} {rng.choice(v)} the {rng.choice(n)} ."
        return f"a {rng.choice(n)} and a {rng.choice(n)} {rng.choice(v)} ."

    def document(self, rng: random.Random) -> Tuple[int, List[str]]:
        topic = rng.randrange(self.topics)
        return topic, [self.sentence(rng, topic) for _ in range(rng.randint(3, 6))]


def write_corpus(directory: str, *, documents: int = 2000, seed: int = 0, grammar_seed: int = 0,
                 name: str = "corpus.txt", **grammar) -> Tuple[str, str]:
    """Write `name` (BERT format: a sentence per line, a blank line between documents) and vocab.txt into
    `directory`; return their paths. The same grammar_seed gives the same language (a held-out split
    is another `seed`)."""
    g = ToyGrammar(seed=grammar_seed, **grammar)
    rng = random.Random(seed + 1)
    os.makedirs(directory, exist_ok=True)
    corpus, vocab = os.path.join(directory, name), os.path.join(directory, "vocab.txt")
    with open(corpus + ".tmp", "w", encoding="utf-8") as f:
        for _ in range(documents):
            f.write("\n".join(g.document(rng)[1]) + "\n\n")
    os.replace(corpus + ".tmp", corpus)
    with open(vocab + ".tmp", "w", encoding="utf-8") as f:
        f.write("\n".join(g.vocab()) + "\n")
    os.replace(vocab + ".tmp", vocab)
    return corpus, vocab


def write_classification(path: str, *, examples: int, seed: int, grammar_seed: int = 0, **grammar) -> None:
    """label<TAB>text lines: the topic of one sentence."""
    g = ToyGrammar(seed=grammar_seed, **grammar)
    rng = random.Random(seed)
    with open(path + ".tmp", "w", encoding="utf-8") as f:
        for _ in range(examples):
            t = rng.randrange(g.topics)
            f.write(f"{t}\t{g.sentence(rng, t)}\n")
    os.replace(path + ".tmp", path)
