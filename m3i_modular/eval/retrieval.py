"""What every cross-modal evaluation shares, whatever the modalities (image or audio against text): recall@K
over a similarity matrix, retrieval both ways over paired lists, and zero-shot classification against class
embeddings. Inputs are embeddings; getting them from a model is the caller's business (eval/zero_shot.py for
images, eval/audio_text.py for audio)."""
from typing import Dict, List, Sequence, Tuple

import torch
import torch.nn.functional as F


def cosine_similarity(queries: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
    """(Q, K) cosine similarities, in float32 on the CPU."""
    q = F.normalize(queries.detach().float().cpu(), dim=-1)
    k = F.normalize(keys.detach().float().cpu(), dim=-1)
    return q @ k.T


def recall_at_k(sim: torch.Tensor, relevant: torch.Tensor, k: int) -> float:
    """Share of queries (rows of sim) with a relevant key among their k most similar."""
    if sim.shape[0] == 0:
        return 0.0
    top = sim.topk(min(k, sim.shape[1]), dim=1).indices
    return float(relevant.gather(1, top).any(1).float().mean())


def distinct_texts(texts: Sequence[str]) -> Tuple[List[str], torch.Tensor]:
    """(the distinct texts, sorted; for each input text the index of its distinct text)."""
    distinct = sorted(set(texts))
    where = {t: i for i, t in enumerate(distinct)}
    return distinct, torch.tensor([where[t] for t in texts], dtype=torch.long)


def paired_retrieval(sim: torch.Tensor, which: torch.Tensor, ks: Sequence[int] = (1, 5, 10), *,
                     names: Tuple[str, str] = ("i2t", "t2i")) -> Dict[str, float]:
    """R@K both ways. `sim` is (items, distinct texts); `which[i]` is item i's text. Identical captions are one
    candidate: item->text ranks the distinct texts, text->item ranks the items for each distinct text, and any
    item whose caption is that text counts as a hit. Keys: f"{names[0]}_r{k}" and f"{names[1]}_r{k}"."""
    sim = sim.detach().float().cpu()
    if which.shape[0] != sim.shape[0]:
        raise ValueError(f"{sim.shape[0]} items but {which.shape[0]} text indices")
    rel = which.cpu()[:, None] == torch.arange(sim.shape[1])[None, :]          # (items, distinct texts)
    out = {}
    for k in ks:
        out[f"{names[0]}_r{k}"] = recall_at_k(sim, rel, k)
    for k in ks:
        out[f"{names[1]}_r{k}"] = recall_at_k(sim.T, rel.T, k)
    return out


def class_embeddings(prompt_embeddings: torch.Tensor, num_classes: int) -> torch.Tensor:
    """(C * T, D) embeddings of T prompts per class (class-major: class 0's prompts first) -> (C, D): each
    prompt l2-normalised, averaged over a class's prompts (CLIP's prompt ensembling)."""
    e = F.normalize(prompt_embeddings.detach().float().cpu(), dim=-1)
    if e.shape[0] % num_classes:
        raise ValueError(f"{e.shape[0]} prompt embeddings do not split into {num_classes} classes")
    return e.view(num_classes, -1, e.shape[-1]).mean(1)


def zero_shot_predict(embeddings: torch.Tensor, class_emb: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Each row's class = the class embedding it is most similar to (cosine). Returns (pred (N,), sim (N, C))."""
    sim = cosine_similarity(embeddings, class_emb)
    return sim.argmax(1), sim


def topk_accuracy(sim: torch.Tensor, labels: torch.Tensor, k: int = 1) -> float:
    """Share of rows whose label is among the k classes of highest score."""
    if sim.shape[0] == 0:
        return 0.0
    top = sim.topk(min(k, sim.shape[1]), dim=1).indices
    return float((top == labels.cpu().long()[:, None]).any(1).float().mean())
