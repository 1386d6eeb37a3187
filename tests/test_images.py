"""Input photos: every awkward or hostile file gets a clear message or a correct, upright JPEG."""

from __future__ import annotations

import io

import pytest
from photo_factory import jpeg_bytes, portrait_image
from PIL import Image

from portrait.errors import PhotoError
from portrait.images import prepare_photo


def opened(prepared) -> Image.Image:
    img = Image.open(io.BytesIO(prepared.jpeg))
    assert img.format == "JPEG" and img.mode == "RGB"
    return img


def test_phone_photo_is_shrunk_upright_and_within_limits():
    data = jpeg_bytes(portrait_image((4032, 3024)), exif_orientation=6)  # stored landscape, shown portrait
    prepared = prepare_photo(data)
    img = opened(prepared)
    assert prepared.original_size == (4032, 3024)
    assert max(img.size) <= 2048 and img.width < img.height  # rotated upright
    assert len(prepared.jpeg) <= 4_500_000


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_exif_orientation_is_applied(orientation):
    img = portrait_image((600, 800))
    prepared = prepare_photo(jpeg_bytes(img, exif_orientation=orientation))
    expect = (600, 800) if orientation == 3 else (800, 600)
    assert opened(prepared).size == expect


def test_alpha_is_flattened_on_white():
    img = Image.new("RGBA", (300, 300), (255, 0, 0, 0))
    buf = io.BytesIO()
    img.save(buf, "PNG")
    out = opened(prepare_photo(buf.getvalue()))
    assert all(v > 245 for v in out.getpixel((150, 150)))


def test_cmyk_and_16bit_and_palette_become_rgb():
    for img in (portrait_image(mode="CMYK"), portrait_image(mode="P")):
        buf = io.BytesIO()
        img.save(buf, "TIFF" if img.mode == "CMYK" else "PNG")
        assert opened(prepare_photo(buf.getvalue())).size == (900, 1200)
    grey16 = Image.linear_gradient("L").resize((256, 256)).convert("I").point(lambda v: v * 256)
    buf = io.BytesIO()
    grey16.convert("I;16").save(buf, "PNG")
    out = opened(prepare_photo(buf.getvalue()))
    assert out.getpixel((128, 255))[0] > 200  # bright stays bright, not clipped to white everywhere
    assert out.getpixel((128, 0))[0] < 30


def test_cmyk_jpeg_is_converted():
    buf = io.BytesIO()
    portrait_image(mode="CMYK").save(buf, "JPEG")
    assert opened(prepare_photo(buf.getvalue())).size == (900, 1200)


def test_animated_gif_uses_its_first_frame():
    frames = [Image.new("RGB", (200, 200), c) for c in ((255, 0, 0), (0, 0, 255))]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:])
    r, g, b = opened(prepare_photo(buf.getvalue())).getpixel((100, 100))
    assert r > 200 and b < 60


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"", "empty"),
        (b"hello, I am a text file pretending to be a JPEG", "not an image"),
        (jpeg_bytes(portrait_image())[:5000], "damaged"),
        (jpeg_bytes(portrait_image((40, 40))), "too small"),
    ],
    ids=["zero-bytes", "text-as-jpg", "truncated", "tiny"],
)
def test_unusable_photos_get_a_clear_message(data, words):
    with pytest.raises(PhotoError) as info:
        prepare_photo(data)
    assert words in info.value.en.lower()
    assert info.value.zh


def test_decompression_bomb_is_refused_before_decoding():
    buf = io.BytesIO()
    Image.new("1", (20000, 20000)).save(buf, "PNG")  # a few KB on disk, 400 MP in memory
    assert len(buf.getvalue()) < 200_000
    with pytest.raises(PhotoError) as info:
        prepare_photo(buf.getvalue())
    assert "too many pixels" in info.value.en


def test_file_over_the_read_cap_is_refused(tmp_path):
    path = tmp_path / "huge.jpg"
    path.write_bytes(jpeg_bytes(portrait_image()) + b"\0" * 2_000_000)
    with pytest.raises(PhotoError) as info:
        prepare_photo(path, max_read=1_000_000)
    assert "too large" in info.value.en


def test_missing_file_is_named(tmp_path):
    with pytest.raises(PhotoError, match="not found"):
        prepare_photo(tmp_path / "nope.jpg")


def test_output_fits_the_byte_limit_even_for_noisy_photos():
    noisy = Image.effect_noise((2048, 2048), 120).convert("RGB")
    prepared = prepare_photo(noisy, max_bytes=600_000)
    assert len(prepared.jpeg) <= 600_000


def test_huge_non_jpeg_is_refused_to_bound_memory():
    buf = io.BytesIO()
    Image.new("1", (7000, 7000)).save(buf, "PNG")  # 49 MP: would be decoded whole
    with pytest.raises(PhotoError) as info:
        prepare_photo(buf.getvalue())
    assert "use a JPEG" in info.value.en
