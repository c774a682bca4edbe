"""Image decoding keeps what the file holds or refuses it (m3i_modular/data/decode.py): value ranges scaled,
transparency over white, EXIF orientation applied, oversized images refused on their header; a 16-bit PNG
keeps its relative values through preprocess.py images -> shards -> the loader."""
import io
import os
import sys
import time

import numpy as np
import pytest
import torch
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # tests/: cli_utils
from cli_utils import png_bomb  # noqa: E402

from m3i_modular.data.decode import DEFAULT_MAX_PIXELS, decode_image  # noqa: E402
from m3i_modular.data.sources.image_folder import ImageFolder  # noqa: E402
from m3i_modular.data.views.pipeline import PretrainDataset, collate  # noqa: E402
from m3i_modular.errors import ConfigError, DataError  # noqa: E402
from preprocess import main as preprocess_main  # noqa: E402


def _png(im: Image.Image, **save) -> bytes:
    out = io.BytesIO()
    im.save(out, format=save.pop("format", "PNG"), **save)
    return out.getvalue()


def _grey(data: bytes) -> np.ndarray:
    """The decoded image's first channel, after checking the three channels are equal (a grey source)."""
    img = decode_image(data)
    assert img.dtype == torch.uint8 and img.shape[0] == 3
    assert torch.equal(img[0], img[1]) and torch.equal(img[1], img[2])
    return img[0].numpy()


def test_sixteen_bit_values_are_scaled_not_clipped():
    arr = np.array([[0, 257 * 100, 65535, 257]], np.uint16)
    im = Image.fromarray(arr)
    assert im.mode == "I;16"
    assert np.asarray(im.convert("RGB"))[0, :, 0].tolist() == [0, 255, 255, 255]  # PIL alone clips
    assert _grey(_png(im)).tolist() == [[0, 100, 255, 1]]
    big_endian = Image.frombytes("I;16B", (4, 1), arr.astype(">u2").tobytes())
    assert _grey(_png(big_endian, format="TIFF")).tolist() == [[0, 100, 255, 1]]


def test_32_bit_integer_and_float_images():
    # I within 0..65535 is read as 16-bit; outside it, by its own min..max (-100 -> 0, 300 -> 255)
    assert _grey(_png(Image.fromarray(np.array([[0, 257 * 7, 65535]], np.int32)), format="TIFF")).tolist() == \
        [[0, 7, 255]]
    assert _grey(_png(Image.fromarray(np.array([[-100, 0, 300]], np.int32)), format="TIFF")).tolist() == \
        [[0, 64, 255]]  # 100 / 400 * 255 = 63.75
    # F in [0, 1] is x * 255; outside, by min..max
    f = Image.fromarray(np.array([[0.0, 0.2, 1.0]], np.float32))
    assert f.mode == "F" and _grey(_png(f, format="TIFF")).tolist() == [[0, 51, 255]]
    wide = Image.fromarray(np.array([[10.0, 60.0, 1010.0]], np.float32))
    assert _grey(_png(wide, format="TIFF")).tolist() == [[0, 13, 255]]  # 50/1000*255 = 12.75
    nan = Image.fromarray(np.array([[0.0, np.nan]], np.float32))
    with pytest.raises(DataError, match="NaN or infinite"):
        decode_image(_png(nan, format="TIFF"))


def test_transparency_is_composited_over_white():
    rgba = Image.fromarray(np.array([[[10, 20, 30, 0], [10, 20, 30, 255], [0, 0, 0, 128]]], np.uint8), "RGBA")
    got = decode_image(_png(rgba)).permute(1, 2, 0)[0].tolist()
    assert got[0] == [255, 255, 255] and got[1] == [10, 20, 30]
    assert all(abs(v - 127) <= 1 for v in got[2])  # half-transparent black over white
    la = Image.fromarray(np.array([[[100, 0], [100, 255]]], np.uint8), "LA")
    assert decode_image(_png(la)).permute(1, 2, 0)[0].tolist() == [[255, 255, 255], [100, 100, 100]]
    pal = Image.new("P", (2, 1))
    pal.putpalette([0, 0, 0, 200, 10, 10] + [0] * 762)
    pal.putpixel((1, 0), 1)
    got = decode_image(_png(pal, transparency=0)).permute(1, 2, 0)[0].tolist()
    assert got == [[255, 255, 255], [200, 10, 10]]


def test_cmyk_and_one_bit_images():
    cmyk = Image.frombytes("CMYK", (2, 1), bytes([0, 0, 0, 0, 255, 0, 0, 0]))
    assert decode_image(_png(cmyk, format="TIFF")).permute(1, 2, 0)[0].tolist() == [[255, 255, 255], [0, 255, 255]]
    one = Image.fromarray(np.array([[True, False]]))
    assert one.mode == "1" and _grey(_png(one)).tolist() == [[255, 0]]


def test_exif_orientation_is_applied():
    arr = np.array([[10, 20, 30, 40], [50, 60, 70, 80]], np.uint8)  # 4 wide, 2 high
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    got = _grey(_png(Image.fromarray(arr), exif=exif))
    assert got.tolist() == [[50, 10], [60, 20], [70, 30], [80, 40]]  # 2 wide, 4 high: the left column on top


def test_a_decompression_bomb_is_refused_on_its_header(tmp_path):
    data = open(png_bomb(tmp_path / "bomb.png"), "rb").read()
    assert len(data) < 200_000  # 1e8 pixels in under 200 KB
    t0 = time.perf_counter()
    with pytest.raises(DataError, match="10000x10000 = 100,000,000 pixels is over the limit of 89,478,485"):
        decode_image(data)
    assert time.perf_counter() - t0 < 1.0  # decoding it would take seconds and 100 MB+ (2 GB as RGB floats)
    assert DEFAULT_MAX_PIXELS == Image.MAX_IMAGE_PIXELS  # the default is PIL's, and PIL's is left as it was
    small = _png(Image.fromarray(np.zeros((40, 40), np.uint8)))
    with pytest.raises(DataError, match="40x40 = 1,600 pixels is over the limit of 1,000"):
        decode_image(small, max_pixels=1000)
    assert decode_image(small, max_pixels=1600).shape == (3, 40, 40)


def test_an_image_folder_skips_and_counts_an_oversized_image(tmp_path):
    for i, side in enumerate((8, 8, 64)):
        (tmp_path / "f" / "a").mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((side, side, 3), 60 + i, np.uint8)).save(tmp_path / "f" / "a" / f"{i}.png")
    src = {"type": "image_folder", "root": str(tmp_path / "f"), "max_image_pixels": 100}
    with pytest.raises(DataError, match=r"2\.png: image of 64x64"):
        ImageFolder(root=src["root"], max_image_pixels=100)[2]
    ds = PretrainDataset({"sources": [src]}, {"raw": []})
    batch = collate([ds[p] for p in range(3)])
    assert int(batch["skipped"]) == 1 and batch["skipped_from"][0].endswith("2.png")
    assert all(tuple(v.shape) == (3, 8, 8) for v in batch["views"]["raw"])
    with pytest.raises(ConfigError, match="max_image_pixels must be a whole number >= 0"):
        ImageFolder(root=src["root"], max_image_pixels=-1)


def test_a_16_bit_png_round_trips_through_preprocess_shards_and_the_loader(tmp_path):
    rng = np.random.default_rng(0)
    original = rng.integers(0, 65536, (32, 32), dtype=np.uint16)
    (tmp_path / "in" / "k").mkdir(parents=True)
    Image.fromarray(original).save(tmp_path / "in" / "k" / "x.png")
    assert preprocess_main(["images", "--folder", str(tmp_path / "in"), "--output", str(tmp_path / "s"),
                            "--workers", "1", "--no-progress"]) == 0
    ds = PretrainDataset({"sources": [{"type": "webdataset_shards", "shards": str(tmp_path / "s")}]}, {"raw": []})
    loader = torch.utils.data.DataLoader(ds, batch_size=1, collate_fn=collate)
    batch = next(iter(loader))
    assert int(batch["skipped"]) == 0
    img = batch["views"]["raw"][0]  # floats in [0, 1] from the stored JPEG
    assert tuple(img.shape) == (3, 32, 32) and float(img.std()) > 0.2  # not a constant image
    corr = np.corrcoef(img[0].numpy().ravel(), original.astype(np.float64).ravel())[0, 1]
    assert corr > 0.99, corr
    # and the values keep their scale: 65535 is white
    assert abs(float(img[0].mean()) - original.mean() / 65535) < 0.02
