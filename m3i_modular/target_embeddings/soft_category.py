"""`soft_category`: class embeddings as candidates (like `category`) plus each sample's label as a class
distribution, so a batch transform that mixes images (`mixup_cutmix`) can mix their labels too.

Reads batch[view] (B,) class ids and, when present, batch["label_mix"][view] = {"partner", "lam"} written by
the batch transform: the distribution of sample i is lam_i * onehot(y_i) + (1 - lam_i) * onehot(y_partner).
A sample is valid when its label, and its partner's where it was mixed, are present. `index` keeps the hard
label, so the plain `boltzmann` target also reads this embedding (unmixed)."""
import torch.nn.functional as F

from ..interfaces import TargetOut
from ..registry import TARGET_EMBEDDINGS
from .basic import CategoryEmbedding


@TARGET_EMBEDDINGS.register("soft_category")
class SoftCategoryEmbedding(CategoryEmbedding):
    def forward(self, batch: dict, *, view: str = "label") -> TargetOut:
        out = super().forward(batch, view=view)
        labels, valid = out.index, out.valid
        soft = F.one_hot(labels, self.num_classes).float()
        mix = batch.get("label_mix", {}).get(view)
        if mix is not None:
            partner, lam = mix["partner"], mix["lam"].float()[:, None]
            soft = lam * soft + (1.0 - lam) * soft[partner]
            valid = valid & valid[partner]
        return TargetOut(valid=valid, value=soft, candidates=out.candidates, bias=out.bias, index=labels)
