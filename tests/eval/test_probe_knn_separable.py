"""Linear probe and k-NN: high accuracy on a separable problem, chance on random labels, analytic votes."""
import torch

from m3i_modular.eval.knn import knn_accuracy, knn_predict
from m3i_modular.eval.linear_probe import fit_logistic, linear_probe, standardise


def _blobs(n, c=4, d=16, seed=0, spread=0.5):
    g = torch.Generator().manual_seed(seed)
    means = torch.randn(c, d, generator=torch.Generator().manual_seed(123)) * 3.0
    y = torch.randint(0, c, (n,), generator=g)
    return means[y] + spread * torch.randn(n, d, generator=g), y


def test_separable_blobs_are_solved_by_probe_and_knn():
    xtr, ytr = _blobs(300, seed=0)
    xte, yte = _blobs(200, seed=1)
    res = linear_probe(xtr, ytr, xte, yte, l2_grid=(1e-2, 1e-4), max_iter=100)
    assert res["accuracy"] > 0.97 and res["num_classes"] == 4 and res["n_train"] == 300
    assert set(res["val_accuracy"]) == {"0.01", "0.0001"}
    assert knn_accuracy(xtr, ytr, xte, yte, k=10) > 0.97


def test_random_labels_stay_near_chance():
    g = torch.Generator().manual_seed(5)
    xtr, xte = torch.randn(400, 16, generator=g), torch.randn(400, 16, generator=g)
    ytr, yte = torch.randint(0, 4, (400,), generator=g), torch.randint(0, 4, (400,), generator=g)
    res = linear_probe(xtr, ytr, xte, yte, l2_grid=(1.0, 1e-3), max_iter=100)
    assert res["accuracy"] < 0.36 and abs(res["chance"] - 0.25) < 1e-9  # chance 0.25, sd ~0.022
    assert knn_accuracy(xtr, ytr, xte, yte, k=20) < 0.36


def test_standardise_uses_train_statistics():
    tr = torch.tensor([[1.0, 10.0], [3.0, 30.0]])
    a, b = standardise(tr, torch.tensor([[2.0, 40.0]]))
    assert torch.allclose(a, torch.tensor([[-1.0, -1.0], [1.0, 1.0]]))
    assert torch.allclose(b, torch.tensor([[0.0, 2.0]]))


def test_strong_l2_shrinks_weights_to_zero():
    x, y = _blobs(100)
    w_weak, _ = fit_logistic(x, y, 4, 1e-4, max_iter=50)
    w_strong, _ = fit_logistic(x, y, 4, 1e3, max_iter=50)
    assert w_strong.norm() < 0.01 * w_weak.norm()


def test_knn_temperature_decides_between_one_close_and_two_far_neighbours():
    # class 0: one neighbour at cos 1.0; class 1: two at cos 0.8. Votes: e^(1/T) vs 2 e^(0.8/T):
    # class 0 wins when T < 0.2 / ln 2 ~ 0.289, class 1 above it.
    a = torch.tensor([1.0, 0.0])
    far = torch.tensor([0.8, 0.6])
    far2 = torch.tensor([0.8, -0.6])
    train = torch.stack([a, far, far2])
    y = torch.tensor([0, 1, 1])
    q = a[None] * 7.0  # cosine: the norm must not matter
    assert int(knn_predict(train, y, q, k=3, temperature=0.1)[0]) == 0
    assert int(knn_predict(train, y, q, k=3, temperature=1.0)[0]) == 1
    assert int(knn_predict(train, y, q, k=1, temperature=1.0)[0]) == 0  # k=1: nearest only
    assert int(knn_predict(train, y, q, k=50, temperature=1.0)[0]) == 1  # k capped at the train size


def test_knn_chunking_does_not_change_predictions():
    xtr, ytr = _blobs(120, spread=3.0)
    xte, _ = _blobs(50, seed=3, spread=3.0)
    assert torch.equal(knn_predict(xtr, ytr, xte, k=7, chunk=7), knn_predict(xtr, ytr, xte, k=7, chunk=1000))
