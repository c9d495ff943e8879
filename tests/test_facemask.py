"""faces/facemask.py: where a face ends (above its jaw line), and the ops' --face-mask."""
from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

from facegan.errors import ConfigError
from facegan.faces.facemask import FEATHER, GROW, jaw_mask
from facegan.io import read_image


def _u_jaw(size: int = 128) -> np.ndarray:
    """68 landmarks whose jaw (0-16) is a U from (20, 40) down to a chin at (64, 110) and up to (108, 40);
    the other 51 points inside the face."""
    t = np.linspace(np.pi, 0.0, 17)
    jaw = np.stack([64 + 44 * np.cos(t), 40 + 70 * np.sin(t)], 1)
    rng = np.random.default_rng(0)
    inner = np.stack([rng.uniform(40, 88, 51), rng.uniform(30, 90, 51)], 1)
    return np.vstack([jaw, inner])


def test_jaw_mask_is_one_inside_zero_below_the_chin_and_open_upwards():
    m = jaw_mask(_u_jaw(), 128)
    assert m.shape == (128, 128) and m.dtype == np.float32
    assert m[70, 64] == 1.0  # the middle of the face
    assert m[2, 64] == 1.0  # the forehead, above every landmark: open upwards
    assert m[125, 64] == 0.0  # the neck below the chin
    assert m[60, 5] == 0.0 and m[60, 123] == 0.0  # beside the jaw
    # the 0.5 level lies GROW of the side outside the chin, the ramp FEATHER wide
    col = m[:, 64]
    below = np.nonzero(col < 0.5)[0]
    assert abs(below[0] - (110 + GROW * 128)) <= 1.5
    ramp = np.nonzero((col > 0.0) & (col < 1.0))[0]
    assert abs(len(ramp) - FEATHER * 128) <= 2


@pytest.mark.parametrize("bad", [np.zeros((5, 2)), np.full((68, 2), np.nan)])
def test_jaw_mask_refuses_what_is_not_68_finite_points(bad):
    with pytest.raises(ValueError):
        jaw_mask(bad, 128)


def test_face_mask_in_crop_follows_the_face_and_falls_back_to_none(portrait_rgb):
    from facegan.faces import align_face
    from facegan.faces.detect import detect_faces
    from facegan.faces.facemask import face_mask_in_crop

    face = max(detect_faces(portrait_rgb, "centerface"), key=lambda f: f.width)
    al = align_face(portrait_rgb, face, "utkface", 128)
    m = face_mask_in_crop(portrait_rgb, face, al)
    assert m is not None and m.shape == (128, 128)
    # the template's eyes (y 0.31) and mouth (y 0.77) are inside; the crop's bottom corners are not
    assert m[40, 38] == 1.0 and m[40, 88] == 1.0 and m[98, 64] == 1.0
    assert m[127, 0] == 0.0 and m[127, 127] == 0.0
    face.landmarks68 = np.zeros((3, 2))  # landmarks that cannot be a jaw: the caller keeps its ellipse
    assert face_mask_in_crop(portrait_rgb, face, al) is None


def test_swap_gender_leaves_the_neck_alone_with_the_landmark_mask(tiny_model, monkeypatch, fixtures_dir):
    """On a portrait whose chin sits above the crop's bottom edge, the ellipse changed the neck below the chin;
    the landmark mask leaves it (the face itself still changes), and each row says which mask it got."""
    from facegan.faces.facemask import face_mask_in_crop
    from facegan.ops.swap_gender import transform_genders

    monkeypatch.setenv("FACEGAN_GENDER_MODEL", str(tiny_model))
    rgb = read_image(fixtures_dir / "people_0.jpg")
    kw = dict(op="swap-gender", strength=1.5, verify=False)
    ell, lm = transform_genders(rgb, face_mask="ellipse", **kw), transform_genders(rgb, **kw)
    assert ell.faces[0]["face_mask"] == "ellipse" and lm.faces[0]["face_mask"] == "landmarks"
    import cv2

    from facegan.faces import align_face
    from facegan.faces.detect import detect_faces

    face = max(detect_faces(rgb, "centerface"), key=lambda f: f.width)
    al = align_face(rgb, face, "utkface", 128)
    m = face_mask_in_crop(rgb, face, al)
    from facegan.faces.align import crop_mask

    below = (m < 0.01) & (crop_mask(al.template, 128, "ellipse") > 0.1)  # under the ellipse, outside the jaw
    assert below.sum() > 100
    outside = cv2.warpAffine((below * 1.0).astype(np.float32), al.inverse, rgb.shape[1::-1]) > 0.99
    inside = cv2.warpAffine(((m > 0.99) * 1.0).astype(np.float32), al.inverse, rgb.shape[1::-1]) > 0.99
    d_ell = np.abs(ell.image.astype(int) - rgb).sum(-1)
    d_lm = np.abs(lm.image.astype(int) - rgb).sum(-1)
    assert d_ell[outside].mean() > 2.0  # the ellipse reaches below the jaw here
    assert d_lm[outside].max() <= 3  # the landmark mask does not (JPEG-free: rounding only)
    assert d_lm[inside].mean() > 0.8 * d_ell[inside].mean()  # the face itself changes as much


def test_face_mask_is_an_op_option_and_is_checked(tiny_model, monkeypatch, portrait_rgb):
    from facegan.cli import main
    from facegan.ops.swap_gender import transform_genders

    monkeypatch.setenv("FACEGAN_GENDER_MODEL", str(tiny_model))
    with pytest.raises(ConfigError, match="face_mask"):
        transform_genders(portrait_rgb, face_mask="hull", verify=False)
    # anonymize keeps the ellipse unless asked (it cost a women -> men flip on held-out photos)
    r = transform_genders(portrait_rgb, op="anonymize", verify=False, ksame=0, reshape=0)
    assert r.faces[0]["face_mask"] == "ellipse"
    r = transform_genders(portrait_rgb, op="anonymize", verify=False, ksame=0, reshape=0, face_mask="landmarks")
    assert r.faces[0]["face_mask"] == "landmarks"
    for op in ("swap-gender", "anonymize"):
        r = CliRunner().invoke(main, [op, "--help"])
        assert "--face-mask [landmarks|ellipse]" in r.output


def test_an_implausible_fit_gives_no_mask():
    """A jaw drawn through the face (the chin above the mouth, an eye outside the jaw) is a failed fit: no mask,
    so the op keeps its ellipse instead of cutting the change across the face."""
    from facegan.faces.facemask import plausible

    p = _u_jaw()
    p[36:42] = (70, 40)
    p[42:48] = (90, 40)
    p[48:68] = (64, 80)
    assert plausible(p, jaw_mask(p, 128))
    q = p.copy()
    q[48:68] = (64, 108)  # the mouth at the chin
    assert not plausible(q, jaw_mask(q, 128))
    q = p.copy()
    q[36:42] = (10, 40)  # an eye beside the jaw
    assert not plausible(q, jaw_mask(q, 128))


def test_a_face_without_a_plausible_fit_gets_the_ellipse_and_says_so(tiny_model, monkeypatch, portrait_rgb):
    from facegan.faces import facemask
    from facegan.ops.swap_gender import transform_genders

    monkeypatch.setenv("FACEGAN_GENDER_MODEL", str(tiny_model))
    kw = dict(op="swap-gender", strength=1.5, verify=False)
    ell = transform_genders(portrait_rgb, face_mask="ellipse", **kw)
    monkeypatch.setattr(facemask, "plausible", lambda p, m: False)  # as for a profile dlib cannot outline
    r = transform_genders(portrait_rgb, **kw)
    assert r.faces[0]["face_mask"] == "ellipse"
    assert np.array_equal(r.image, ell.image)  # exactly the ellipse's output
