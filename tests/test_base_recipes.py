"""Paper-scale recipes build on the meta device with the papers' parameter counts."""
import pytest

from m3i_modular.config import load_config
from m3i_modular.run import build_run, parameter_table

# ViT-B/16: 86.6M with a 1000-class head (timm vit_base_patch16_224: 86,567,656); MAE's ViT-B encoder is
# the same without the head, and its 8x512 decoder adds ~26M.
EXPECTED = {
    "models/supervised_vit_base.json": {"total": 86.6e6},
    "models/mae_vit_base.json": {"encoder": 85.1e6, "objectives.mae": 26.3e6},
    # SimMIM / data2vec add a 768 -> 768 linear head (0.59M); data2vec's and SiameseIM's EMA copies equal the
    # online tower (85.65M: 85.06M blocks + 0.59M patch projection); SiameseIM's 8 x 512 predictor is 26.5M.
    "models/simmim_vit_base.json": {"encoder": 85.06e6, "embedding": 0.591e6, "objectives.simmim": 0.591e6},
    "models/data2vec_vit_base.json": {"encoder": 85.06e6, "shared.ema": 85.65e6, "objectives.data2vec": 0.591e6},
    "models/siameseim_vit_base.json": {"encoder": 85.06e6, "shared.ema": 85.65e6,
                                       "objectives.siameseim": 26.5e6},
}


@pytest.mark.parametrize("path", sorted(EXPECTED))
def test_base_recipe_parameter_count(path):
    run = build_run(load_config(path), with_data=False, device="meta")
    table = parameter_table(run.model)
    assert next(run.model.parameters()).is_meta
    for key, want in EXPECTED[path].items():
        assert abs(table[key] - want) / want < 0.01, (key, table[key], want)
