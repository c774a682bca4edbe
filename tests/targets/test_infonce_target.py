import math

import torch

from m3i_modular.interfaces import TargetOut
from m3i_modular.targets.infonce import InfoNCETarget


def _tgt(c, valid=None, index=None):
    n = c.shape[0]
    valid = torch.ones(n, dtype=torch.bool) if valid is None else valid
    index = torch.arange(n) if index is None else index
    return TargetOut(valid=valid[index], candidates=c, index=index, candidates_per_row=True, candidate_valid=valid)


def test_identical_features_give_exactly_ln_b():
    b = 16
    x = torch.ones(b, 8)
    loss, m = InfoNCETarget()(x, _tgt(x))
    assert math.isclose(float(loss), math.log(b), rel_tol=1e-5)
    assert math.isclose(float(m["logit_scale"]), 1 / 0.07, rel_tol=1e-5)


def test_random_features_at_init_are_near_ln_b():
    torch.manual_seed(0)
    b = 64
    loss, _ = InfoNCETarget()(torch.randn(b, 2048), _tgt(torch.randn(b, 2048)))
    assert abs(float(loss) - math.log(b)) < 0.15


def test_symmetric_is_the_mean_of_both_directions():
    torch.manual_seed(1)
    p, c = torch.randn(8, 16), torch.randn(8, 16)
    one_way = InfoNCETarget(symmetric=False)
    i2t, _ = one_way(p, _tgt(c))
    t2i, _ = one_way(c, _tgt(p))
    both, _ = InfoNCETarget()(p, _tgt(c))
    assert torch.allclose(both, 0.5 * (i2t + t2i), atol=1e-5)
    # swapping the roles of predictions and candidates leaves the symmetric loss unchanged
    swapped, _ = InfoNCETarget()(c, _tgt(p))
    assert torch.allclose(both, swapped, atol=1e-5)


def test_missing_captions_are_neither_targets_nor_negatives():
    torch.manual_seed(2)
    p, c = torch.randn(6, 16), torch.randn(6, 16)
    valid = torch.tensor([True, True, False, True, False, True])
    keep = valid.nonzero().flatten()
    one_way = InfoNCETarget(symmetric=False)
    full, m = one_way(p, _tgt(c, valid))
    sub, _ = one_way(p[keep], _tgt(c[keep]))
    assert int(m["count"]) == 4
    assert torch.allclose(full, sub, atol=1e-5)
    # caption -> image: an image without a caption is still a negative for the others' captions
    both, _ = InfoNCETarget()(p, _tgt(c, valid))
    assert torch.isfinite(both)


def test_two_roles_per_sample_skip_each_other():
    # M3I's select "both": rows [A roles; B roles], the B role of input i is image i - 1
    torch.manual_seed(3)
    b = 5
    c = torch.randn(b, 16)
    p = torch.randn(2 * b, 16, requires_grad=True)
    index = torch.cat([torch.arange(b), (torch.arange(b) - 1) % b])
    loss, m = InfoNCETarget()(p, _tgt(c, index=index))
    loss.backward()
    assert int(m["count"]) == 2 * b and torch.isfinite(p.grad).all()
    # reference: row r vs all captions; its caption vs all rows except the other role of its own image
    s = 1 / 0.07
    pn, cn = torch.nn.functional.normalize(p.detach(), dim=-1), torch.nn.functional.normalize(c, dim=-1)
    ref = []
    for r in range(2 * b):
        i2t = torch.nn.functional.cross_entropy(s * pn[r] @ cn.T, index[r])
        cols = [k for k in range(2 * b) if k == r or index[k] != index[r]]
        t2i = torch.nn.functional.cross_entropy(s * cn[index[r]] @ pn[cols].T, torch.tensor(cols.index(r)))
        ref.append(0.5 * (i2t + t2i))
    assert torch.allclose(loss.detach(), torch.stack(ref).mean(), atol=1e-5)


def test_logit_scale_is_capped():
    t = InfoNCETarget(temperature=0.001)
    assert math.isclose(float(t.logit_scale()), 100.0, rel_tol=1e-5)


def test_both_views_matches_nt_xent():
    torch.manual_seed(4)
    b, d = 6, 8
    p, c = torch.nn.functional.normalize(torch.randn(b, d), dim=-1), torch.nn.functional.normalize(torch.randn(b, d), dim=-1)
    loss, _ = InfoNCETarget(negatives="batch_both_views", learn_temperature=False, temperature=0.5)(p, _tgt(c))
    # SimCLR's NT-Xent over the 2b views: each view's positive is its pair, negatives all other 2b - 2
    z = torch.cat([p, c]) / 0.5 ** 0.5
    sim = (z @ z.T).fill_diagonal_(float("-inf"))
    target = torch.cat([torch.arange(b) + b, torch.arange(b)])
    ref = torch.nn.functional.cross_entropy(sim, target)
    assert torch.allclose(loss, ref, atol=1e-5)
