"""Image-text transfer of a model with a text tower (CLIP, M3I): zero-shot classification with class-name
prompts and image<->text retrieval R@K.

    pretrained = m3i.load("runs/clip_vit")
    obj = text_objective(pretrained)                       # the objective whose target is the text tower
    img = encode_images(pretrained, images, obj)           # (N, D): that objective's image projector
    cls = class_text_embeddings(pretrained, ["circle", "square"], ["a photo of a {name}"], obj)
    pred, sim = zero_shot_predict(img, cls)                # eval/retrieval.py, shared with audio

Images are embedded by the objective's pooling decoder over all of the unmixed view's tokens, texts by its
text tower; both are compared by cosine. Several templates per class are averaged (prompt ensembling).
Functions take a loaded model (m3i_modular.inference.Pretrained) but never import it.
"""
from typing import Any, Callable, Dict, List, Optional, Sequence

import torch

from ..errors import ConfigError
from ..registry import nearest
from .retrieval import class_embeddings, cosine_similarity, distinct_texts, paired_retrieval, topk_accuracy

DEFAULT_TEMPLATES = ("a photo of a {name}",)


def _is_text_tower(module: Any) -> bool:
    return getattr(module, "registry_name", None) == "text_tower"


def text_objectives(pretrained: Any) -> List[str]:
    """The objectives that compare a pooled image embedding with a text tower's embedding."""
    return [name for name, obj in pretrained.model.objectives.items()
            if _is_text_tower(obj.target_embedding) and not getattr(obj.decoder, "needs_query", False)]


def why_not(pretrained: Any) -> Optional[str]:
    """Why image-text evaluation does not apply to this model, or None when it does."""
    if not text_objectives(pretrained):
        return "the model has no image-text objective (a text_tower target with a pooling decoder)"
    if getattr(pretrained, "tokenizer", None) is None:
        return "the model has no tokenizer (the recipe or checkpoint must carry one)"
    return None


def applicable(pretrained: Any) -> bool:
    """True when the model can be evaluated zero-shot and on image<->text retrieval."""
    return why_not(pretrained) is None


def text_objective(pretrained: Any, objective: Optional[str] = None) -> str:
    """The image-text objective to evaluate: `objective` if given (checked), else the only one."""
    names = text_objectives(pretrained)
    if objective is not None:
        if objective not in names:
            objs = pretrained.model.objectives
            if objective in objs:
                raise ConfigError(f"objective '{objective}' does not compare images with a text tower "
                                  f"(image-text objectives: {', '.join(names) or 'none'})")
            raise ConfigError(f"no objective '{objective}' in this model{nearest(objective, objs)}")
        return objective
    reason = why_not(pretrained)
    if reason:
        raise ConfigError(f"zero-shot and retrieval do not apply: {reason}")
    if len(names) > 1:
        raise ConfigError(f"the model has several image-text objectives ({', '.join(names)}): choose one "
                          f"with --objective")
    return names[0]


def tower_name(pretrained: Any, objective: str) -> str:
    """The name `Pretrained.text_tower` knows the objective's tower by (its shared key if it is shared)."""
    te = pretrained.model.objectives[objective].target_embedding
    for key, module in pretrained.model.shared.items():
        if module is te:
            return key
    return objective


def prompts(class_names: Sequence[str], templates: Sequence[str]) -> List[str]:
    """Class-major prompts: every template for class 0, then class 1, ..."""
    for t in templates:
        if "{name}" not in t:
            raise ConfigError(f"template '{t}' has no {{name}} for the class name")
    return [t.replace("{name}", str(name)) for name in class_names for t in templates]


def encode_images(pretrained: Any, images: torch.Tensor, objective: str, batch_size: int = 256) -> torch.Tensor:
    """(N, D) image embeddings of preprocessed (N, 3, H, W) images through the objective's projector."""
    out = [pretrained.encode_image(images[i:i + batch_size], objective=objective).float().cpu()
           for i in range(0, images.shape[0], batch_size)]
    return torch.cat(out)


def encode_texts(pretrained: Any, texts: Sequence[str], objective: str, batch_size: int = 256) -> torch.Tensor:
    """(N, D) text embeddings through the objective's text tower."""
    tower = tower_name(pretrained, objective)
    out = [pretrained.encode_text(list(texts[i:i + batch_size]), tower=tower).float().cpu()
           for i in range(0, len(texts), batch_size)]
    return torch.cat(out)


def class_text_embeddings(pretrained: Any, class_names: Sequence[str], templates: Sequence[str],
                          objective: str) -> torch.Tensor:
    """(C, D): each class's prompts embedded, normalised and averaged."""
    texts = prompts(class_names, templates)
    return class_embeddings(encode_texts(pretrained, texts, objective), len(class_names))


def zero_shot_scores(image_emb: torch.Tensor, labels: torch.Tensor, class_emb: torch.Tensor) -> Dict[str, float]:
    """Top-1 (and top-5 with more than 5 classes) accuracy of nearest-class-embedding prediction over the
    labelled rows (label >= 0)."""
    keep = labels >= 0
    sim = cosine_similarity(image_emb[keep], class_emb)
    out = {"zero_shot_acc": topk_accuracy(sim, labels[keep], 1)}
    if class_emb.shape[0] > 5:
        out["zero_shot_top5"] = topk_accuracy(sim, labels[keep], 5)
    return out


def image_text_retrieval(image_emb: torch.Tensor, captions: Sequence[str],
                         encode: Callable[[List[str]], torch.Tensor], *,
                         ks: Sequence[int] = (1, 5, 10)) -> Dict[str, float]:
    """R@K both ways over paired (image embedding, caption) rows: i2t_r{k}, t2i_r{k}. Identical captions are
    one candidate (eval/retrieval.py); `encode(texts) -> (len(texts), D)` embeds the distinct captions."""
    if image_emb.shape[0] != len(captions):
        raise ValueError(f"{image_emb.shape[0]} images but {len(captions)} captions: retrieval needs pairs")
    distinct, which = distinct_texts(captions)
    return paired_retrieval(cosine_similarity(image_emb, encode(distinct)), which, ks, names=("i2t", "t2i"))
