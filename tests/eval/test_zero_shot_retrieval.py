"""Zero-shot classification and image<->text retrieval: identical image and text embeddings give 100% and
R@1 = 1; duplicate captions are one candidate; the image-text objective and its tower are found on a real
model; recall@K on a hand-made similarity matrix."""
import torch

from m3i_modular.recipe.config import load_config
from m3i_modular.eval import zero_shot as zs
from m3i_modular.eval.retrieval import class_embeddings, paired_retrieval, recall_at_k, zero_shot_predict
from m3i_modular.inference import Pretrained

from tiny_recipe import REPO  # noqa: E402

NAMES = ["circle", "square", "star", "ring", "cross", "arrow", "moon"]


def _embed(texts, dim=16):
    """A fixed random vector per distinct text: the stand-in for both towers."""
    out = []
    for t in texts:
        g = torch.Generator().manual_seed(sum(ord(c) * 31 ** i for i, c in enumerate(t)) % (2 ** 31))
        out.append(torch.randn(dim, generator=g))
    return torch.stack(out)


class _IdenticalTowers:
    """encode_image returns exactly the text embedding of the image's caption (its 'true' text)."""

    def __init__(self, captions):
        self.captions = captions

    def encode_image(self, images, objective=None):
        return _embed([self.captions[int(i)] for i in images[:, 0, 0, 0]])

    def encode_text(self, texts, tower=None):
        return _embed(texts)


def test_identical_image_and_text_embeddings_give_full_zero_shot_and_recall():
    labels = torch.arange(21) % len(NAMES)
    prompts = zs.prompts(NAMES, ["a photo of a {name}"])
    captions = [prompts[int(y)] for y in labels]           # each image's text is its class prompt
    img = _embed(captions)
    cls = class_embeddings(_embed(prompts), len(NAMES))
    scores = zs.zero_shot_scores(img, labels, cls)
    assert scores["zero_shot_acc"] == 1.0 and scores["zero_shot_top5"] == 1.0
    pred, sim = zero_shot_predict(img, cls)
    assert torch.equal(pred, labels) and sim.shape == (21, len(NAMES))
    uniq = [f"caption {i}" for i in range(21)]
    r = zs.image_text_retrieval(_embed(uniq), uniq, _embed)
    assert r["i2t_r1"] == 1.0 and r["t2i_r1"] == 1.0 and set(r) == {f"{d}_r{k}" for d in ("i2t", "t2i")
                                                                   for k in (1, 5, 10)}
    # through a model's API: image embedding = text embedding of its caption
    model = _IdenticalTowers(uniq)
    images = torch.arange(21, dtype=torch.float32).view(21, 1, 1, 1).expand(21, 3, 2, 2)
    emb = zs.encode_images(model, images, "clip", batch_size=4)
    assert zs.image_text_retrieval(emb, uniq, lambda t: model.encode_text(t))["i2t_r1"] == 1.0


def test_duplicate_captions_are_one_candidate_and_any_of_their_images_is_a_hit():
    # images 0 and 1 share a caption: both retrieve it at rank 1, and the caption retrieves either image
    sim = torch.tensor([[0.9, 0.1], [0.8, 0.2], [0.1, 0.7]])
    which = torch.tensor([0, 0, 1])
    r = paired_retrieval(sim, which, ks=(1,))
    assert r == {"i2t_r1": 1.0, "t2i_r1": 1.0}
    r = paired_retrieval(torch.tensor([[0.1, 0.9], [0.8, 0.2], [0.1, 0.7]]), which, ks=(1, 2))
    # image 0 ranks the wrong caption first; caption 1 ranks image 0 (caption 0) first
    assert abs(r["i2t_r1"] - 2 / 3) < 1e-6 and r["i2t_r2"] == 1.0 and r["t2i_r1"] == 0.5 and r["t2i_r2"] == 1.0


def test_recall_at_k_by_hand():
    sim = torch.tensor([[0.1, 0.5, 0.3], [0.9, 0.2, 0.1]])
    rel = torch.tensor([[False, False, True], [False, False, True]])   # ranks 2 and 3
    assert recall_at_k(sim, rel, 1) == 0.0 and recall_at_k(sim, rel, 2) == 0.5 and recall_at_k(sim, rel, 3) == 1.0


def test_text_objective_and_tower_of_a_real_recipe():
    cfg = load_config(f"{REPO}/models/m3i_vit.json")
    model = Pretrained.from_config(cfg)
    assert zs.text_objectives(model) == ["text"] and zs.tower_name(model, "text") == "text"
    assert not zs.applicable(model) and "tokenizer" in zs.why_not(model)   # no tokenizer given
    mae = Pretrained.from_config(load_config(f"{REPO}/models/mae_vit.json"))
    assert not zs.applicable(mae) and "no image-text objective" in zs.why_not(mae)
