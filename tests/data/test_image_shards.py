"""Image shards: folder/list -> preprocess.py images -> shards -> batches; order, mixing shares, skips."""
import json
import os
import sys

import pytest
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # --import-mode=importlib: reach the helper
from shard_fixtures import (COLOURS, class_folder, colour_class, jpeg_bytes, solid,  # noqa: E402
                            write_shards)

from m3i_modular.data.views.pipeline import PretrainDataset, collate  # noqa: E402
from m3i_modular.data.skips import MIN_DRAWS, SkipTally  # noqa: E402
from m3i_modular.data.sources.tar_index import ShardIndex, split_name  # noqa: E402
from m3i_modular.preprocess.tar_writer import ShardWriter  # noqa: E402
from m3i_modular.data.tokenizers.char import CharTokenizer  # noqa: E402
from m3i_modular.data.sources.webdataset import WebDatasetShards, expand_braces  # noqa: E402
from m3i_modular.errors import ConfigError, DataError  # noqa: E402
from preprocess import main as preprocess_main  # noqa: E402

RAW_VIEW = {"raw": []}  # no transforms: the view is the decoded image as floats in [0, 1]


def _dataset(shards, seed=0, **data):
    sources = shards if isinstance(shards, list) else [{"type": "webdataset_shards", "shards": shards}]
    return PretrainDataset({"sources": sources, **data}, RAW_VIEW, seed=seed)


def test_folder_to_shards_to_batches_keeps_labels(tmp_path):
    root = class_folder(tmp_path / "inet", per_class=3)
    (tmp_path / "inet" / "dog" / "broken.jpg").write_bytes(b"not an image")
    out = tmp_path / "shards"
    assert preprocess_main(["images", "--folder", root, "--output", str(out), "--shard-size", "4",
                            "--workers", "2", "--no-progress"]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["classes"] == ["cat", "dog", "eel"]
    assert manifest["samples"] == 9 and manifest["skipped_count"] == 1
    assert [s["samples"] for s in manifest["shards"]] == [4, 4, 1]
    assert manifest["skipped"][0]["path"].endswith("broken.jpg")
    ds = _dataset(str(out / "manifest.json"))
    assert len(ds) == 9
    batch = collate([ds[p] for p in range(9)])
    assert sorted(batch["key"]) == [f"{i:09d}" for i in range(9)]
    for k, label, image in zip(batch["key"], batch["label"].tolist(), batch["views"]["raw"]):
        assert label == int(k) // 3  # classes are written in sorted folder order, 3 images each
        assert colour_class((image * 255).round()) == label  # and the pixels are the class's image
    assert batch["present"]["label"].all() and not batch["present"]["text"].any()
    assert int(batch["skipped"]) == 0


def test_tsv_pairs_and_unlabelled_images_round_trip(tmp_path):
    captions = ["a red square", "a green field", "blue sky, with \"quotes\"", "yellow"]
    for i, c in enumerate(COLOURS):
        solid(c).save(tmp_path / f"img{i}.png")
    rows = ["image\tcaption"] + [f"img{i}.png\t{cap}" for i, cap in enumerate(captions)]
    (tmp_path / "pairs.tsv").write_text("\n".join(rows).replace('"quotes"', 'quotes') + "\n")
    assert preprocess_main(["images", "--list", str(tmp_path / "pairs.tsv"), "--output", str(tmp_path / "p"),
                            "--resize", "10", "--workers", "1", "--no-progress"]) == 0
    src = WebDatasetShards(shards=str(tmp_path / "p"))
    got = [src[i] for i in range(len(src))]
    assert [g["caption"] for g in got] == [c.replace('"quotes"', "quotes") for c in captions]
    assert all(g["label"] is None for g in got)
    assert [tuple(g["image"].shape) for g in got] == [(3, 10, 12)] * 4  # shorter side 20 -> 10
    assert [colour_class(g["image"]) for g in got] == [0, 1, 2, 3]
    tok = CharTokenizer.from_texts(captions)
    ds = PretrainDataset({"sources": [{"type": "webdataset_shards", "shards": str(tmp_path / "p")}],
                          "text_length": 40}, RAW_VIEW, tokenizer=tok)
    batch = collate([ds[p] for p in range(4)])
    assert batch["present"]["text"].all() and not batch["present"]["label"].any()
    by_key = {k: t for k, t in zip(batch["key"], batch["text"])}
    ids = [i for i in by_key["000000001"].tolist() if i not in (tok.pad_id, tok.bos_id, tok.eos_id)]
    assert tok.decode(ids) == "a green field"
    # unlabelled images: no label, no caption, image kept
    assert preprocess_main(["images", "--images", str(tmp_path / "img0.png"), str(tmp_path / "img3.png"),
                            "--output", str(tmp_path / "u"), "--no-progress", "--workers", "1"]) == 0
    u = WebDatasetShards(shards=str(tmp_path / "u" / "000000.tar"))
    assert [(u[i]["label"], u[i]["caption"], colour_class(u[i]["image"])) for i in range(2)] == \
        [(None, None, 0), (None, None, 3)]


def test_writer_index_matches_header_scan_and_jpeg_is_kept_bit_exact(tmp_path):
    data = jpeg_bytes(COLOURS[1])
    with ShardWriter(str(tmp_path / "%02d.tar"), max_count=3) as w:
        for i in range(5):
            w.write(f"dir/k{i}", {"jpg": data, "txt": f"caption {i}"})
    assert [s["samples"] for s in w.shards] == [3, 2]
    for name in ("00.tar", "01.tar"):
        cached, scanned = ShardIndex.load(str(tmp_path / name)), ShardIndex.scan(str(tmp_path / name))
        assert cached.keys == scanned.keys and cached.members == scanned.members and not scanned.truncated
    src = WebDatasetShards(shards=str(tmp_path / "{00..01}.tar"))
    assert [src.key(i) for i in range(5)] == [f"dir/k{i}" for i in range(5)]
    offset, size = src.members[1][0]["jpg"]
    assert src.files.read(src.paths[1], offset, size) == data
    assert src[4]["caption"] == "caption 4"


def test_brace_expansion_and_name_split():
    assert expand_braces("s/{008..011}.tar") == ["s/008.tar", "s/009.tar", "s/010.tar", "s/011.tar"]
    assert expand_braces("{a,b}{1..2}") == ["a1", "a2", "b1", "b2"]
    assert split_name("x/y/000123.seg.PNG") == ("x/y/000123", "seg.png")


def test_same_seed_same_order_other_seed_other_order(tmp_path):
    shards = write_shards(tmp_path, "a", 40)
    orders = [[_dataset(shards, seed=s)[p]["key"] for p in range(80)] for s in (5, 5, 6)]
    assert orders[0] == orders[1] and orders[0] != orders[2]
    assert sorted(orders[0][:40]) == sorted(orders[0][40:])  # each epoch is a permutation of all samples
    assert orders[0][:40] != orders[0][40:]  # reshuffled per epoch


def test_weights_give_the_source_shares(tmp_path):
    a, b = write_shards(tmp_path, "a", 30, colour=0), write_shards(tmp_path, "b", 20, colour=2)
    ds = _dataset([{"type": "webdataset_shards", "shards": a, "weight": 0.8},
                   {"type": "webdataset_shards", "shards": b, "weight": 0.2}], epoch_size=500)
    sources = [ds.locate(p)[0] for p in range(2000)]
    assert abs(sources.count(0) / 2000 - 0.8) < 0.03
    # the located source is the one whose sample comes back (keys and pixels)
    for p in range(0, 2000, 97):
        item = ds[p]
        assert item["key"][0] == "ab"[sources[p]]
        assert colour_class((item["views"]["raw"] * 255).round()) == (0, 2)[sources[p]]


def test_truncated_shard_and_corrupt_jpegs_are_skipped_and_counted(tmp_path):
    shards = write_shards(tmp_path, "c", 20, bad={4, 13})  # 4: cut-off JPEG, 13: not a JPEG
    last = tmp_path / "c-001.tar"
    index = ShardIndex.scan(str(last))
    off, size = index.members[-1]["jpg"]
    with open(last, "r+b") as f:  # cut the shard inside its last JPEG
        f.truncate(off + size // 2)
    with pytest.raises(ConfigError, match=r"c-001.tar is truncated: .* 9 of its samples readable"):
        WebDatasetShards(shards=shards)  # refused unless asked for
    src = WebDatasetShards(shards=shards, allow_truncated=True)
    assert src.truncated == [str(last)] and len(src) == 20
    for bad in (4, 13, 19):
        with pytest.raises(DataError, match=f"c-00{bad // 10}.tar"):
            src[bad]
    ds = _dataset([{"type": "webdataset_shards", "shards": shards, "allow_truncated": True}])
    items = [ds[p] for p in range(20)]  # one epoch: every index is drawn once
    batch = collate(items)
    assert int(batch["skipped"]) == 3
    assert sorted(os.path.basename(w) for w in batch["skipped_from"]) == ["c-000.tar", "c-001.tar", "c-001.tar"]
    # a replaced sample is the next one of the same source; the others are the sample drawn
    assert sorted(it["key"] for it in items if not it["skipped"]) == \
        sorted(f"c{i:05d}" for i in range(20) if i not in (4, 13, 19))
    assert {it["key"] for it in items if it["skipped"]} <= {"c00005", "c00014", "c00000"}


def test_skip_tally_share_and_floor():
    tally = SkipTally(max_share=0.01)
    tally.add({"key": ["k"] * 64, "skipped": torch.tensor(5), "skipped_from": ["s.tar"] * 5})
    assert tally.report() == {"data_skipped": 5, "data_skipped_total": 5}  # 5 <= 0.01 * MIN_DRAWS
    tally.add({"key": ["k"] * 64, "skipped": torch.tensor(6), "skipped_from": ["t.tar"] * 6})
    with pytest.raises(DataError, match="most of them in t.tar"):
        tally.report()  # 11 > 0.01 * max(139, MIN_DRAWS)
    big = SkipTally(max_share=0.01)
    big.add({"key": ["k"] * (2 * MIN_DRAWS), "skipped": torch.tensor(20)})
    assert big.report()["data_skipped_total"] == 20  # 20 <= 0.01 * 2020
    resumed = SkipTally(max_share=0.01)
    resumed.load_state(big.state())
    assert (resumed.skipped, resumed.drawn) == (20, 2 * MIN_DRAWS + 20)


def test_bad_shard_specs_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        WebDatasetShards(shards=str(tmp_path / "{000..001}.tar"))
    (tmp_path / "junk.tar").write_bytes(b"\x00" * 10)
    with pytest.raises(ConfigError, match="junk.tar"):
        WebDatasetShards(shards=str(tmp_path / "junk.tar"))


def test_img2dataset_style_shard_is_read_as_is_and_indexed(tmp_path):
    import io as _io
    import tarfile
    path = tmp_path / "00000.tar"
    with tarfile.open(path, "w") as tar:  # img2dataset's layout: .jpg + .txt + .json, caption also in json
        for i, (colour, caption) in enumerate([(COLOURS[0], "red thing"), (COLOURS[3], None)]):
            files = {"jpg": jpeg_bytes(colour), "json": json.dumps({"caption": caption or "from json",
                                                                   "status": "success"}).encode()}
            if caption:
                files["txt"] = caption.encode()
            for ext, data in files.items():
                info = tarfile.TarInfo(f"0000{i:05d}.{ext}")
                info.size = len(data)
                tar.addfile(info, _io.BytesIO(data))
    src = WebDatasetShards(shards=str(path))  # no index file: scanned in memory
    assert not os.path.exists(str(path) + ".idx.json")
    assert [src[i]["caption"] for i in range(2)] == ["red thing", "from json"]
    assert [colour_class(src[i]["image"]) for i in range(2)] == [0, 3]
    assert preprocess_main(["images", "--index", str(path)]) == 0
    cached = ShardIndex.load(str(path))
    assert cached.keys == ["000000000", "000000001"] and cached.members == ShardIndex.scan(str(path)).members
    with open(path, "ab") as f:  # the shard changed: the stale index is ignored, not trusted
        f.write(b"\0" * 1024)
    assert len(WebDatasetShards(shards=str(path))) == 2


@pytest.mark.parametrize("case", ["no_folder", "exists", "bad_list_column"])
def test_preprocess_images_errors_are_one_line_exit_2(tmp_path, capsys, case):
    out = tmp_path / "out"
    if case == "no_folder":
        args = ["--folder", str(tmp_path / "nope"), "--output", str(out)]
    elif case == "exists":
        out.mkdir()
        (out / "keep.txt").write_text("mine")
        args = ["--images", str(tmp_path), "--output", str(out)]
    else:
        solid(COLOURS[0]).save(tmp_path / "a.png")
        (tmp_path / "l.csv").write_text("path,caption\na.png,hi\n")
        args = ["--list", str(tmp_path / "l.csv"), "--output", str(out)]
    assert preprocess_main(["images", *args, "--no-progress", "--workers", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("preprocess.py images: error:")
    if case == "exists":
        assert (out / "keep.txt").read_text() == "mine"  # nothing of the user's was touched
    else:
        assert not out.exists()
