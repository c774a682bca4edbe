"""`preprocess.py images --list`: csv quoting kept, named columns required, bad rows named by file:line or (with
--on-bad-row skip) left out and counted (m3i_modular/preprocess/list_rows.py)."""
import json

import numpy as np
import pytest
from PIL import Image

from m3i_modular.data.sources.webdataset import WebDatasetShards
from m3i_modular.errors import ConfigError, DataError
from m3i_modular.preprocess.list_rows import ListReader
from preprocess import main as preprocess_main


def _image(folder, name="a.png"):
    Image.fromarray(np.full((8, 8, 3), 90, np.uint8)).save(folder / name)


def _captions(out):
    src = WebDatasetShards(shards=str(out))
    return [src[i]["caption"] for i in range(len(src))]


def test_a_tab_or_comma_inside_a_quoted_caption_is_kept(tmp_path, capsys):
    _image(tmp_path)
    (tmp_path / "p.tsv").write_text('image\tcaption\na.png\t"a red\tsquare on grass"\na.png\t"say ""hi"""\n')
    assert preprocess_main(["images", "--list", str(tmp_path / "p.tsv"), "--output", str(tmp_path / "t"),
                            "--workers", "1", "--no-progress"]) == 0
    assert _captions(tmp_path / "t") == ["a red\tsquare on grass", 'say "hi"']
    (tmp_path / "p.csv").write_bytes('\ufeffimage,caption\na.png,"a red, square\non grass"\n'.encode())
    assert preprocess_main(["images", "--list", str(tmp_path / "p.csv"), "--output", str(tmp_path / "c"),
                            "--workers", "1", "--no-progress"]) == 0
    assert _captions(tmp_path / "c") == ["a red, square\non grass"]  # a byte-order mark is no part of a name
    assert "0 bad row(s) of the list skipped" in capsys.readouterr().out


def test_bad_rows_name_their_line_or_are_skipped_and_counted(tmp_path, capsys):
    _image(tmp_path)
    (tmp_path / "p.tsv").write_bytes(b"image\tcaption\na.png\tfine\na.png\tthe \xff cat\na.png\tan\textra field\n"
                                     b"a.png\t\"two\nlines\"\n\ta lost image\na.png\tlast\n")
    with pytest.raises(DataError, match=r"p\.tsv:3: not valid UTF-8 \(byte 0xff at column 11\)"):
        list(ListReader(str(tmp_path / "p.tsv")).rows())
    reader = ListReader(str(tmp_path / "p.tsv"), on_bad_row="skip")
    rows = list(reader.rows())
    assert [line for line, _ in rows] == [2, 5, 7, 8]  # a record's first line, also past a skipped one
    assert rows[1][1]["caption"] == "two\nlines"
    assert [b["line"] for b in reader.bad] == [3, 4] and "3 field(s) where the header names 2" in reader.bad[1]["error"]
    assert preprocess_main(["images", "--list", str(tmp_path / "p.tsv"), "--output", str(tmp_path / "o"),
                            "--on-bad-row", "skip", "--workers", "1", "--no-progress"]) == 0
    assert "3 bad row(s) of the list skipped" in capsys.readouterr().out  # the two above and the empty image
    manifest = json.loads((tmp_path / "o" / "manifest.json").read_text())
    assert manifest["bad_rows_count"] == 3 and [b["line"] for b in manifest["bad_rows"]] == [3, 4, 7]
    assert _captions(tmp_path / "o") == ["fine", "two\nlines", "last"]


def test_a_named_column_is_required_and_the_error_names_the_columns_found(tmp_path):
    (tmp_path / "p.tsv").write_text("image\ttext\na.png\thello\n")
    with pytest.raises(ConfigError, match=r"no 'caption' column in the header \(columns found: 'image', 'text'\); "
                                          r"set --caption-col to one of them, or --caption-col '' if the list"):
        list(ListReader(str(tmp_path / "p.tsv"), required={"image": "--image-col", "caption": "--caption-col"},
                        optional_flags=("--caption-col",)).rows())
    _image(tmp_path)
    assert preprocess_main(["images", "--list", str(tmp_path / "p.tsv"), "--output", str(tmp_path / "o"),
                            "--caption-col", "", "--workers", "1", "--no-progress"]) == 0
    assert _captions(tmp_path / "o") == [None]
    assert preprocess_main(["images", "--list", str(tmp_path / "p.tsv"), "--output", str(tmp_path / "o2"),
                            "--caption-col", "text", "--workers", "1", "--no-progress"]) == 0
    assert _captions(tmp_path / "o2") == ["hello"]


def test_jsonl_rows_need_the_named_keys(tmp_path):
    (tmp_path / "p.jsonl").write_text('{"image": "a.png", "caption": "x"}\n{"image": "a.png"}\n')
    with pytest.raises(DataError, match=r"p\.jsonl:2: no 'caption' key \(keys: image\)"):
        list(ListReader(str(tmp_path / "p.jsonl"), required={"image": "--image-col", "caption": "--caption-col"})
             .rows())
