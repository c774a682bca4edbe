"""scripts/gradient_share.py on a tiny M3I at init: every objective's share is reported and they sum to 1; the
category objective pulls nothing yet (its class embeddings start at zero, so no gradient reaches the tower)."""
import json
import math

from cli_utils import run_cli

TINY = ["model.embedding.dim=32", "model.encoder.dim=32", "model.encoder.layers=1", "model.encoder.heads=2",
        "model.objectives.intra_view.decoder.dim=32", "model.objectives.intra_view.decoder.layers=1",
        "model.objectives.inter_view.decoder.dim=32", "model.objectives.inter_view.decoder.layers=1",
        "model.objectives.category.target_embedding.dim=32", "data.sources.0.num_samples=64"]


def test_shares_sum_to_one_and_zero_init_classes_pull_nothing():
    sets = [a for s in TINY for a in ("--set", s)]
    proc = run_cli("scripts/gradient_share.py", "--random-init", "--config", "models/m3i_vit.json", *sets,
                   "--batches", "1", "--batch-size", "8", check=True)
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    assert set(res["share"]) == {"intra_view", "inter_view", "category", "text"}
    assert math.isclose(sum(res["share"].values()), 1.0, rel_tol=1e-6)
    assert res["norm"]["category"] == 0.0 and res["norm"]["intra_view"] > 0 and res["norm"]["text"] > 0
    assert len(res["cosine"]) == 6 and all(-1.0 - 1e-6 <= c <= 1.0 + 1e-6 for c in res["cosine"].values())
    assert "share" in proc.stderr  # the table
