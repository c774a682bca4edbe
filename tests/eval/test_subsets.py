"""Evaluation subsets: stratified by class where a source tells its labels (every class present, in
proportion), a seeded uniform draw otherwise, never the first N -- the defect that probed one class of
class-sorted shards."""
import numpy as np
import pytest
from PIL import Image

from m3i_modular.data.sources.webdataset import WebDatasetShards
from m3i_modular.eval.subsets import allocate, choose_subset, per_class_indices, stratified_indices
from m3i_modular.preprocess.images import folder_jobs, write_image_shards


class _Labelled:
    """A source that tells its labels: class-sorted, like preprocess.py images --folder writes shards."""

    def __init__(self, labels):
        self._labels = list(labels)

    def __len__(self):
        return len(self._labels)

    def labels(self):
        return list(self._labels)


class _Unlabelled:
    def __init__(self, n):
        self.n = n

    def __len__(self):
        return self.n


def test_allocation_is_proportional_with_every_class_represented():
    assert allocate([1000] * 10, 100) == [10] * 10
    assert allocate([50, 30, 20], 10) == [5, 3, 2]
    assert allocate([100, 1, 1], 3) == [1, 1, 1]          # the rare classes still get one each
    assert allocate([3, 3], 10) == [3, 3]                  # never more than a class holds
    assert allocate([10, 0, 3], 4) == [3, 0, 1]
    assert sum(allocate([7, 5, 9, 2], 11)) == 11


def test_class_sorted_source_gives_every_class_not_the_first_n():
    labels = [c for c in range(8) for _ in range(50)]   # 400 samples, class by class
    idx, how = choose_subset(_Labelled(labels), 40, seed=0)
    assert how == "stratified" and len(idx) == 40 and idx == sorted(idx)
    assert sorted({labels[i] for i in idx}) == list(range(8))
    assert all(sum(labels[i] == c for i in idx) == 5 for c in range(8))
    assert idx != list(range(40))
    assert choose_subset(_Labelled(labels), 40, seed=0)[0] == idx          # seeded: reproducible
    assert choose_subset(_Labelled(labels), 40, seed=1)[0] != idx
    assert choose_subset(_Labelled(labels), 400, seed=0) == (list(range(400)), "all")


def test_unlabelled_samples_are_not_drawn_and_unknown_labels_draw_uniformly():
    labels = [None] * 10 + [0] * 10 + [1] * 10
    idx = stratified_indices(labels, 6, seed=0)
    assert len(idx) == 6 and all(i >= 10 for i in idx)
    idx, how = choose_subset(_Unlabelled(1000), 100, seed=3)
    assert how == "random" and len(set(idx)) == 100 and idx != list(range(100))
    assert max(idx) > 500  # spread over the whole source
    assert choose_subset(_Unlabelled(1000), 100, seed=3)[0] == idx


def test_per_class_indices_take_k_of_each_class():
    labels = [c for c in range(5) for _ in range(30)] + [5, 5]
    idx = per_class_indices(labels, 10, seed=0)
    counts = np.bincount([labels[i] for i in idx])
    assert counts.tolist() == [10, 10, 10, 10, 10, 2]  # a class with fewer gives all it has


@pytest.fixture()
def class_folders(tmp_path):
    root = tmp_path / "imgs"
    rng = np.random.default_rng(0)
    for c in ("ant", "bee", "cat", "dog"):
        (root / c).mkdir(parents=True)
        for i in range(6):
            Image.fromarray(rng.integers(0, 255, (12, 12, 3), dtype=np.uint8)).save(root / c / f"{i}.png")
    return root


def test_preprocessed_class_folder_shards_tell_their_labels_and_are_drawn_stratified(class_folders, tmp_path):
    classes, jobs = folder_jobs(str(class_folders))
    write_image_shards(jobs, str(tmp_path / "shards"), classes=classes, shard_size=5)
    src = WebDatasetShards(shards=str(tmp_path / "shards" / "manifest.json"))
    assert src.labels() == [c for c in range(4) for _ in range(6)]      # class-sorted, read without decoding
    idx, how = choose_subset(src, 8, seed=0)
    assert how == "stratified" and sorted({src[i]["label"] for i in idx}) == [0, 1, 2, 3]
