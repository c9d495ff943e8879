"""facegan.io: reading every accepted format, refusing the rest with typed errors, writing with
synthetic-content metadata. Every input is made here (or taken from tests/fixtures)."""
from __future__ import annotations

import io
import os
import struct
import zlib

import numpy as np
import pytest
from PIL import Image, ImageCms, ImageFile

from facegan.errors import (CorruptImageError, EmptyFileError, FaceganError, ImageTooLargeError,
                            InputNotFoundError, OutputExistsError, UnsupportedFormatError)
from facegan.io import (ACCEPTED_EXTENSIONS, ACCEPTED_FORMATS, GENERATED, encode_image, is_synthetic,
                        iter_images, read_image, read_metadata, read_photo, sniff_format, stored_like,
                        write_image)

from conftest import png_chunk, png_with_size, small_png

BAD_CASES = ["empty", "gif", "gif_named_png", "animated_webp", "svg", "heic", "avif", "pdf", "ico",
             "text", "random", "truncated_jpeg", "corrupt_png", "bomb", "too_large", "missing"]


def pattern(h=24, w=32) -> np.ndarray:
    """Four flat quadrants (red, green, blue, white): survives JPEG, easy to locate."""
    a = np.zeros((h, w, 3), np.uint8)
    a[: h // 2, : w // 2] = (255, 0, 0)
    a[: h // 2, w // 2:] = (0, 255, 0)
    a[h // 2:, : w // 2] = (0, 0, 255)
    a[h // 2:, w // 2:] = (255, 255, 255)
    return a


def looks_like(out: np.ndarray, src: np.ndarray) -> bool:
    """Lossy-codec equality: small mean error, and every quadrant's centre keeps its colour."""
    h, w = src.shape[:2]
    centres = [(h // 4, w // 4), (h // 4, 3 * w // 4), (3 * h // 4, w // 4), (3 * h // 4, 3 * w // 4)]
    diff = np.abs(out.astype(int) - src.astype(int))
    return diff.mean() < 8 and all(diff[y, x].max() < 30 for y, x in centres)


def encoded(im: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    return buf.getvalue()


# ---- format sniffing --------------------------------------------------------------------------

@pytest.mark.parametrize("fmt,kw", [("JPEG", {}), ("PNG", {}), ("WEBP", {}), ("BMP", {}), ("TIFF", {}),
                                    ("GIF", {}), ("ICO", {}), ("PDF", {})])
def test_sniff_format_names_pillow_encoded_files(fmt, kw):
    data = encoded(Image.fromarray(pattern()), fmt, **kw)
    assert sniff_format(data) == fmt


@pytest.mark.parametrize("data,expected", [
    (b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic", "HEIF"),
    (b"\x00\x00\x00\x18ftypmif1\x00\x00\x00\x00mif1heic", "HEIF"),
    (b"\x00\x00\x00\x1cftypavif\x00\x00\x00\x00avifmif1miaf", "AVIF"),
    (b"\x00\x00\x00\x1cftypmif1\x00\x00\x00\x00mif1avifmiaf", "AVIF"),
    (b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2", "MP4/MOV video"),
    (b"\xef\xbb\xbf<svg xmlns='http://www.w3.org/2000/svg'/>", "SVG"),
    (b"<?xml version='1.0'?>\n<!-- x -->\n<svg/>", "SVG"),
    (b"<?xml version='1.0'?><note>not svg</note>", None),
    (b"hello world", None),
    (b"", None),
    (b"MM\x00*\x00\x00\x00\x08", "TIFF"),
])
def test_sniff_format_by_magic(data, expected):
    assert sniff_format(data) == expected


# ---- accepted formats -------------------------------------------------------------------------

@pytest.mark.parametrize("fmt,kw,lossless", [
    ("PNG", {}, True), ("BMP", {}, True), ("TIFF", {}, True), ("TIFF", {"compression": "tiff_lzw"}, True),
    ("WEBP", {"lossless": True}, True), ("WEBP", {"quality": 95}, False), ("JPEG", {"quality": 95}, False),
])
def test_reads_every_accepted_format(tmp_path, fmt, kw, lossless):
    src = pattern()
    path = tmp_path / f"img.{fmt.lower()}"
    path.write_bytes(encoded(Image.fromarray(src), fmt, **kw))
    out = read_image(path)
    assert out.dtype == np.uint8 and out.shape == src.shape and out.flags.writeable
    assert (out == src).all() if lossless else looks_like(out, src)
    assert fmt in ACCEPTED_FORMATS


def test_bytes_and_path_give_the_same_pixels(portrait_path):
    a = read_image(portrait_path)
    b = read_image(portrait_path.read_bytes())
    assert a.shape == (226, 221, 3)
    np.testing.assert_array_equal(a, b)


def test_real_fixture_photos_read_with_their_sizes(portrait_paths, two_faces_path):
    for path in [*portrait_paths, two_faces_path]:
        with Image.open(path) as im:
            w, h = im.size
        assert read_image(path).shape == (h, w, 3)


@pytest.mark.parametrize("real,named", [("PNG", "photo.jpg"), ("JPEG", "photo.png"), ("WEBP", "photo.bmp")])
def test_extension_that_lies_is_read_by_content(tmp_path, real, named):
    src = pattern()
    path = tmp_path / named
    path.write_bytes(encoded(Image.fromarray(src), real, **({"lossless": True} if real == "WEBP" else {})))
    out = read_image(path)
    assert out.shape == src.shape and looks_like(out, src)


# ---- refused and broken inputs ----------------------------------------------------------------

@pytest.mark.parametrize("case", BAD_CASES)
def test_bad_inputs_raise_typed_errors(bad_inputs, case):
    bad = bad_inputs[case]
    with pytest.raises(FaceganError) as info:
        read_image(bad.path)
    assert type(info.value) is bad.error, (case, info.value)
    message = str(info.value)
    assert bad.path.name in message
    assert "Traceback" not in message
    if bad.error is UnsupportedFormatError:
        assert all(f in message for f in ACCEPTED_FORMATS), message


@pytest.mark.parametrize("case,named", [("gif", "GIF"), ("svg", "SVG"), ("heic", "HEIF"), ("avif", "AVIF"),
                                        ("pdf", "PDF"), ("ico", "ICO")])
def test_refusal_names_the_real_format(bad_inputs, case, named):
    with pytest.raises(UnsupportedFormatError, match=named):
        read_image(bad_inputs[case].path)


def test_gif_named_png_says_so(bad_inputs):
    with pytest.raises(UnsupportedFormatError, match=r"named \.png, but the content is GIF"):
        read_image(bad_inputs["gif_named_png"].path)


def test_empty_bytes_folder_and_wrong_type(tmp_path):
    with pytest.raises(EmptyFileError):
        read_image(b"")
    with pytest.raises(InputNotFoundError, match="folder"):
        read_image(tmp_path)
    with pytest.raises(TypeError):
        read_image(123)


def test_animated_png_refused_still_png_accepted():
    frames = [Image.new("RGB", (8, 8), c) for c in ((255, 0, 0), (0, 0, 255))]
    apng = encoded(frames[0], "PNG", save_all=True, append_images=frames[1:])
    with pytest.raises(UnsupportedFormatError, match="animated PNG"):
        read_image(apng)
    assert read_image(encoded(frames[0], "PNG"))[0, 0].tolist() == [255, 0, 0]


def test_multipage_tiff_gives_first_page():
    pages = [Image.new("RGB", (8, 8), c) for c in ((255, 0, 0), (0, 0, 255))]
    out = read_image(encoded(pages[0], "TIFF", save_all=True, append_images=pages[1:]))
    assert out[0, 0].tolist() == [255, 0, 0]


def test_truncated_real_photo_is_corrupt_at_several_cuts(portrait_path):
    data = portrait_path.read_bytes()
    for cut in (len(data) - 2, len(data) // 2, 300):
        with pytest.raises(CorruptImageError):
            read_image(data[:cut], name="cut.jpg")


def test_pixel_limit_from_argument_and_environment(portrait_path, monkeypatch):
    pixels = 221 * 226
    with pytest.raises(ImageTooLargeError, match="megapixels"):
        read_image(portrait_path, max_pixels=pixels - 1)
    assert read_image(portrait_path, max_pixels=pixels).shape == (226, 221, 3)
    monkeypatch.setenv("FACEGAN_MAX_PIXELS", str(pixels - 1))
    with pytest.raises(ImageTooLargeError, match="FACEGAN_MAX_PIXELS"):
        read_image(portrait_path)
    # an explicit argument wins over the environment
    assert read_image(portrait_path, max_pixels=10**6).shape == (226, 221, 3)


def test_pixel_limit_is_checked_before_decoding(bad_inputs, monkeypatch):
    def no_decoding(self):
        raise AssertionError("pixels were decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)
    for case in ("too_large", "bomb"):
        with pytest.raises(ImageTooLargeError):
            read_image(bad_inputs[case].path)
    # the same header, raised to a limit it fits, goes on to decode (and here meets the guard)
    with pytest.raises(AssertionError, match="decoded"):
        read_image(bad_inputs["too_large"].path, max_pixels=50_000_000)


def test_large_dimension_image_with_low_limit():
    big = encoded(Image.new("RGB", (3000, 2000), (10, 20, 30)), "PNG")
    with pytest.raises(ImageTooLargeError, match="3000x2000"):
        read_image(big, max_pixels=5_000_000)
    assert read_image(big, max_pixels=6_000_000).shape == (2000, 3000, 3)


# ---- colour modes -----------------------------------------------------------------------------

def test_grayscale_L():
    out = read_image(encoded(Image.new("L", (4, 4), 100), "PNG"))
    assert out.shape == (4, 4, 3) and (out == 100).all()


def test_one_bit():
    a = np.zeros((8, 8), bool)
    a[:, 4:] = True
    out = read_image(encoded(Image.fromarray(a), "PNG"))
    # read descreened (the grey tones a dithered photo prints): black and white far from the edge, a ramp across it
    assert out.shape == (8, 8, 3) and (out[:, 0] <= 2).all() and (out[:, 7] >= 253).all()
    assert (np.diff(out[0, :, 0].astype(int)) >= 0).all() and 0 < out[0, 3, 0] < out[0, 4, 0] < 255


def test_LA_transparent_goes_white():
    im = Image.new("LA", (4, 2), (50, 255))
    im.putpixel((0, 0), (50, 0))
    out = read_image(encoded(im, "PNG"))
    assert out[0, 0].tolist() == [255, 255, 255]
    assert out[1, 1].tolist() == [50, 50, 50]


def test_rgba_is_composited_over_white():
    im = Image.new("RGBA", (4, 4), (255, 0, 0, 128))
    out = read_image(encoded(im, "PNG"))
    r, g, b = out[0, 0].tolist()
    assert r == 255 and abs(g - 127) <= 1 and abs(b - 127) <= 1


def test_read_photo_keeps_alpha_straight_colours_and_grey_mode():
    a = np.zeros((4, 6, 4), np.uint8)
    a[..., 0], a[..., 3] = 200, 255
    a[0, 0] = (10, 20, 30, 0)  # fully transparent, with a colour of its own
    a[1, 1, 3] = 128
    ph = read_photo(encoded(Image.fromarray(a, "RGBA"), "PNG"))
    assert ph.rgb.tolist() == read_image(encoded(Image.fromarray(a, "RGBA"), "PNG")).tolist()
    assert ph.rgb[0, 0].tolist() == [255, 255, 255] and not ph.grey
    assert ph.alpha.tolist() == a[..., 3].tolist() and ph.straight.tolist() == a[..., :3].tolist()
    # opaque alpha, grey files, plain RGB
    opaque = a.copy()
    opaque[..., 3] = 255
    assert read_photo(encoded(Image.fromarray(opaque, "RGBA"), "PNG")).alpha is None
    assert read_photo(encoded(Image.new("L", (4, 4), 9), "PNG")).grey
    assert read_photo(encoded(Image.fromarray(np.array([[0, 65535]], np.uint16)), "PNG")).grey
    assert not read_photo(encoded(Image.new("RGB", (4, 4), (9, 9, 9)), "PNG")).grey


def test_stored_like_puts_alpha_and_grey_back(tmp_path):
    a = np.zeros((8, 8, 4), np.uint8)
    a[..., :3], a[..., 3] = (30, 90, 150), 255
    a[:2, :, 3] = 0
    a[:2, :, :3] = (1, 2, 3)
    a[2:4, :, 3] = 100
    ph = read_photo(encoded(Image.fromarray(a, "RGBA"), "PNG"))
    # an operation that changed nothing gives the file's own pixels back, transparency and all
    same = stored_like(ph, ph.rgb.copy(), ".png")
    assert same.shape == (8, 8, 4) and same.tolist() == a.tolist()
    # a change is added to the colours as they were before compositing; alpha untouched
    out = ph.rgb.copy()
    out[6, 6] = (40, 90, 150)
    changed = stored_like(ph, out, "webp")
    assert changed[6, 6].tolist() == [40, 90, 150, 255] and (changed[..., 3] == a[..., 3]).all()
    write_image(tmp_path / "x.png", changed, synthetic=True)
    back = np.asarray(Image.open(tmp_path / "x.png"))
    assert Image.open(tmp_path / "x.png").mode == "RGBA" and back.tolist() == changed.tolist()
    # JPEG holds no alpha: the composited RGB, as before
    assert stored_like(ph, out, ".jpg") is out
    write_image(tmp_path / "x.jpg", changed, synthetic=True)  # RGBA pixels to JPEG: flattened over white
    assert Image.open(tmp_path / "x.jpg").mode == "RGB"
    # a grey file comes back grey (with its alpha when it had one)
    g = read_photo(encoded(Image.new("L", (4, 4), 77), "PNG"))
    assert stored_like(g, g.rgb, ".png").tolist() == [[77] * 4] * 4
    la = Image.new("LA", (4, 4), (60, 255))
    la.putpixel((0, 0), (60, 0))
    gla = read_photo(encoded(la, "PNG"))
    kept = stored_like(gla, gla.rgb, ".png")
    assert kept.shape == (4, 4, 2) and kept[0, 0].tolist() == [60, 0] and kept[1, 1].tolist() == [60, 255]
    write_image(tmp_path / "g.png", kept, synthetic=False)
    assert Image.open(tmp_path / "g.png").mode == "LA"


@pytest.mark.parametrize("with_transparency", [False, True])
def test_palette_png(with_transparency):
    im = Image.new("P", (4, 4), 0)
    im.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    im.putpixel((3, 3), 1)
    kw = {"transparency": 0} if with_transparency else {}
    out = read_image(encoded(im, "PNG", **kw))
    assert out[3, 3].tolist() == [255, 0, 0]
    assert out[0, 0].tolist() == ([255, 255, 255] if with_transparency else [0, 0, 0])


def test_cmyk_jpeg():
    im = Image.new("CMYK", (16, 16), (255, 0, 0, 0))  # pure cyan
    out = read_image(encoded(im, "JPEG", quality=95))
    r, g, b = out[8, 8].tolist()
    assert r < 20 and g > 235 and b > 235


def test_sixteen_bit_grey_png_is_scaled():
    a = np.array([[0, 32896, 65535]], np.uint16)
    im = Image.fromarray(a)
    data = encoded(im, "PNG")
    assert Image.open(io.BytesIO(data)).mode.startswith("I")  # really stored as 16-bit
    out = read_image(data)
    assert out[0, :, 0].tolist() == [0, 128, 255]


def test_sixteen_bit_rgb_png():
    # Pillow cannot write 48-bit PNG: build one by hand (1x2 pixels, bit depth 16, colour type 2)
    rows = b"".join(b"\x00" + struct.pack(">6H", *px) for px in [(65535, 0, 32896, 0, 65535, 0)])
    ihdr = struct.pack(">IIBBBBB", 2, 1, 16, 2, 0, 0, 0)
    data = (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", zlib.compress(rows))
            + png_chunk(b"IEND", b""))
    out = read_image(data)
    assert out.shape == (1, 2, 3)
    assert out[0, 0].tolist() == [255, 0, 128] and out[0, 1].tolist() == [0, 255, 0]


def _swapped_profile() -> bytes:
    """sRGB's ICC profile with the red and green primaries swapped (and renamed)."""
    b = bytearray(ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes())
    tags = {}
    for i in range(struct.unpack(">I", b[128:132])[0]):
        sig, off, size = struct.unpack(">4sII", b[132 + 12 * i: 144 + 12 * i])
        tags[sig] = (off, size)
    (ro, rs), (go, gs) = tags[b"rXYZ"], tags[b"gXYZ"]
    red, green = bytes(b[ro:ro + rs]), bytes(b[go:go + gs])
    b[ro:ro + rs], b[go:go + gs] = green, red
    i = b.find("sRGB".encode("utf-16-be"))
    b[i:i + 8] = "swap".encode("utf-16-be")
    return bytes(b)


def test_icc_profile_is_converted_to_srgb():
    im = Image.new("RGB", (4, 4), (255, 0, 0))
    assert read_image(encoded(im, "PNG", icc_profile=_swapped_profile()))[0, 0].tolist() == [0, 255, 0]
    # a damaged profile is ignored, not fatal
    assert read_image(encoded(im, "PNG", icc_profile=b"not a profile"))[0, 0].tolist() == [255, 0, 0]


# ---- EXIF orientation -------------------------------------------------------------------------

@pytest.mark.parametrize("orientation,shape,red_corner", [
    (1, (24, 32), "top-left"), (3, (24, 32), "bottom-right"),
    (6, (32, 24), "top-right"), (8, (32, 24), "bottom-left"),
])
@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_exif_orientation_is_applied(orientation, shape, red_corner, fmt):
    exif = Image.Exif()
    exif[0x0112] = orientation
    out = read_image(encoded(Image.fromarray(pattern(24, 32)), fmt, exif=exif))
    assert out.shape[:2] == shape
    h, w = shape
    corners = {"top-left": out[: h // 4, : w // 4], "top-right": out[: h // 4, -w // 4:],
               "bottom-left": out[-h // 4:, : w // 4], "bottom-right": out[-h // 4:, -w // 4:]}
    red = [name for name, px in corners.items()
           if px[..., 0].mean() > 200 and px[..., 1].mean() < 60 and px[..., 2].mean() < 60]
    assert red == [red_corner]


# ---- writing ----------------------------------------------------------------------------------

@pytest.mark.parametrize("ext", [".png", ".jpg", ".jpeg", ".webp"])
def test_write_synthetic_metadata_round_trip(tmp_path, portrait_rgb, ext):
    path = write_image(tmp_path / f"out{ext}", portrait_rgb, synthetic=True,
                       info={"operation": "swap-gender", "faces": 1})
    meta = read_metadata(path)
    assert meta["synthetic"] is True and is_synthetic(path) and is_synthetic(path.read_bytes())
    assert meta["digital_source_type"].endswith("/compositeWithTrainedAlgorithmicMedia")
    assert "DigitalSourceType" in meta["xmp"] and "compositeWithTrainedAlgorithmicMedia" in meta["xmp"]
    assert "AI-generated" in meta["description"]
    assert meta["software"].startswith("facegan")
    assert meta["facegan"]["operation"] == "swap-gender" and meta["facegan"]["faces"] == "1"
    out = read_image(path)
    assert out.shape == portrait_rgb.shape
    diff = np.abs(out.astype(int) - portrait_rgb).mean()
    assert diff == 0 if ext == ".png" else diff < 4


@pytest.mark.parametrize("fmt", ["png", "jpg", "webp"])
def test_not_synthetic_has_no_mark(fmt, portrait_rgb):
    data = encode_image(portrait_rgb, fmt, synthetic=False)
    meta = read_metadata(data)
    assert meta["synthetic"] is False and meta["digital_source_type"] is None
    assert meta["software"].startswith("facegan")


def test_generated_source_type_and_foreign_marks(portrait_rgb, portrait_path):
    assert read_metadata(encode_image(portrait_rgb, synthetic=True, source_type=GENERATED))[
        "digital_source_type"].endswith("/trainedAlgorithmicMedia")
    # another tool's IPTC mark (element form) counts as synthetic too
    xmp = (b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-'
           b'syntax-ns#"><rdf:Description xmlns:Iptc4xmpExt="http://iptc.org/std/Iptc4xmpExt/2008-02-29/">'
           b"<Iptc4xmpExt:DigitalSourceType>http://cv.iptc.org/newscodes/digitalsourcetype/"
           b"trainedAlgorithmicMedia</Iptc4xmpExt:DigitalSourceType></rdf:Description></rdf:RDF></x:xmpmeta>")
    assert is_synthetic(encoded(Image.fromarray(portrait_rgb), "JPEG", xmp=xmp))
    assert not is_synthetic(portrait_path)  # an ordinary photo


def test_encode_image_bytes_read_back(portrait_rgb):
    np.testing.assert_array_equal(read_image(encode_image(portrait_rgb, "png", synthetic=True)), portrait_rgb)


def test_write_refuses_to_overwrite(tmp_path, portrait_rgb):
    path = tmp_path / "out.png"
    write_image(path, portrait_rgb, synthetic=True)
    before = path.read_bytes()
    with pytest.raises(OutputExistsError, match="already exists"):
        write_image(path, portrait_rgb[::-1].copy(), synthetic=True)
    assert path.read_bytes() == before
    write_image(path, portrait_rgb[::-1].copy(), synthetic=True, overwrite=True)
    np.testing.assert_array_equal(read_image(path), portrait_rgb[::-1])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.png"]  # no temp files left


def test_write_never_touches_an_input(photo_copy, portrait_rgb):
    before = photo_copy.read_bytes()
    other_spelling = photo_copy.parent / ".." / photo_copy.parent.name / photo_copy.name
    link = photo_copy.parent / "link.jpg"
    os.symlink(photo_copy, link)
    for target in (photo_copy, other_spelling, link):
        with pytest.raises(OutputExistsError, match="input"):
            write_image(target, portrait_rgb, synthetic=True, overwrite=True, protect=[photo_copy])
    assert photo_copy.read_bytes() == before


def test_write_creates_folders_and_checks_arguments(tmp_path, portrait_rgb):
    path = write_image(tmp_path / "a" / "b" / "out.webp", portrait_rgb, synthetic=False)
    assert path.is_file() and sniff_format(path.read_bytes()) == "WEBP"
    with pytest.raises(UnsupportedFormatError):
        write_image(tmp_path / "out.gif", portrait_rgb, synthetic=True)
    with pytest.raises(ValueError):
        write_image(tmp_path / "float.png", portrait_rgb.astype(np.float32), synthetic=True)
    (tmp_path / "dir.png").mkdir()
    with pytest.raises(OutputExistsError, match="folder"):
        write_image(tmp_path / "dir.png", portrait_rgb, synthetic=True, overwrite=True)
    assert not (tmp_path / "float.png").exists()


# ---- listing ----------------------------------------------------------------------------------

def test_iter_images(tmp_path):
    files = ["b.jpg", "a.PNG", "sub/c.webp", "sub/deeper/d.tiff", "sub/e.bmp",
             "notes.txt", ".hidden.jpg", ".cache/f.jpg", "sub/g.gif"]
    for name in files:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    found = [p.relative_to(tmp_path).as_posix() for p in iter_images(tmp_path)]
    assert found == ["a.PNG", "b.jpg", "sub/c.webp", "sub/deeper/d.tiff", "sub/e.bmp"]
    assert iter_images(tmp_path / "notes.txt") == [tmp_path / "notes.txt"]  # a file is taken as given
    assert iter_images(tmp_path / ".cache") == [tmp_path / ".cache" / "f.jpg"]  # asked for explicitly
    with pytest.raises(InputNotFoundError):
        iter_images(tmp_path / "nope")
    assert {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff"} <= set(ACCEPTED_EXTENSIONS)


def test_bomb_header_helper_really_claims_the_size():
    data = png_with_size(small_png(), 30_000, 30_000)
    assert struct.unpack(">II", data[16:24]) == (30_000, 30_000)


def test_a_bilevel_photo_is_descreened_and_its_unchanged_pixels_come_back(tmp_path, portrait_path):
    """A dithered 1-bit photo (mode "1", or grey with only black and white) is read as the grey tones it prints;
    written back, it is black and white again, every pixel the operation did not change exactly its own."""
    from PIL import Image

    from facegan.io import read_photo, stored_like

    src = Image.open(portrait_path).convert("1")
    p1 = tmp_path / "dots.png"
    src.save(p1)
    pl = tmp_path / "dots_l.png"
    src.convert("L").save(pl)
    for p in (p1, pl):
        ph = read_photo(p)
        assert ph.bilevel is not None and ph.grey
        assert np.array_equal(ph.bilevel, np.asarray(src.convert("L")))
        assert len(np.unique(ph.rgb)) > 50  # continuous tones for the models
        assert np.array_equal(stored_like(ph, ph.rgb, "png"), ph.bilevel)  # nothing changed: the file's own dots
        changed = ph.rgb.copy()
        changed[40:80, 60:120] = np.clip(changed[40:80, 60:120].astype(int) + 60, 0, 255)
        out = stored_like(ph, changed, "png")
        assert set(np.unique(out)) <= {0, 255}
        assert not np.array_equal(out[40:80, 60:120], ph.bilevel[40:80, 60:120])
        far = np.ones(out.shape, bool)
        far[36:84, 56:124] = False  # the change and 4 px round it
        assert np.array_equal(out[far], ph.bilevel[far])
        assert out[40:80, 60:120].mean() > ph.bilevel[40:80, 60:120].mean()  # lighter, as the change
    grey = tmp_path / "grey.png"
    Image.open(portrait_path).convert("L").save(grey)
    assert read_photo(grey).bilevel is None  # a grey photo is not descreened
