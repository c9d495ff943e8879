"""faces/reshape.py: landmark moves, the warp that carries them out, and anonymize's use of it."""
from __future__ import annotations

import numpy as np
import pytest

from facegan.faces.reshape import EYE_L, EYE_R, JAW, FaceWarp, random_targets
from facegan.io import read_image


def _face68(cx=100.0, cy=110.0, s=60.0):
    """A plausible 68-point layout (iBUG order) around (cx, cy), face width ~s."""
    p = np.zeros((68, 2))
    t = np.linspace(-1, 1, 17)
    p[0:17] = np.stack([cx + t * s / 2, cy + (1 - t ** 2) * s * 0.55], 1)  # jaw
    p[17:22] = np.stack([cx - s * 0.35 + np.linspace(0, s * 0.25, 5), np.full(5, cy - s * 0.35)], 1)
    p[22:27] = np.stack([cx + s * 0.10 + np.linspace(0, s * 0.25, 5), np.full(5, cy - s * 0.35)], 1)
    p[27:31] = np.stack([np.full(4, cx), cy - s * 0.25 + np.arange(4) * s * 0.08], 1)
    p[31:36] = np.stack([cx + np.linspace(-s * 0.1, s * 0.1, 5), np.full(5, cy + s * 0.08)], 1)
    ring = lambda c, r, n: c + np.stack([r * np.cos(np.linspace(0, 2 * np.pi, n, endpoint=False)),  # noqa: E731
                                         0.4 * r * np.sin(np.linspace(0, 2 * np.pi, n, endpoint=False))], 1)
    p[36:42] = ring(np.array([cx - s * 0.2, cy - s * 0.2]), s * 0.08, 6)
    p[42:48] = ring(np.array([cx + s * 0.2, cy - s * 0.2]), s * 0.08, 6)
    p[48:60] = ring(np.array([cx, cy + s * 0.25]), s * 0.18, 12)
    p[60:68] = ring(np.array([cx, cy + s * 0.25]), s * 0.12, 8)
    return p


def test_targets_change_proportions_within_the_magnitude():
    p = _face68()
    assert np.array_equal(random_targets(p, 0.0, np.random.default_rng(0)), p)
    iod = np.linalg.norm(p[EYE_R].mean(0) - p[EYE_L].mean(0))
    width = np.ptp(p[JAW, 0])
    seen = set()
    for seed in range(20):
        q = random_targets(p, 0.1, np.random.default_rng(seed))
        d_iod = np.linalg.norm(q[EYE_R].mean(0) - q[EYE_L].mean(0)) / iod - 1
        d_jaw = np.ptp(q[JAW, 0]) / width - 1
        assert 0.06 - 1e-9 <= abs(d_iod) <= 0.1 + 1e-9  # 60-100% of the magnitude, either sign
        assert 0.06 - 1e-9 <= abs(d_jaw) <= 0.1 + 1e-9
        assert np.abs(q - p).max() < 0.2 * iod * 2  # no landmark goes far
        seen.add((d_iod > 0, d_jaw > 0))
    assert len(seen) == 4  # both directions are drawn, independently
    a, b = (random_targets(p, 0.1, np.random.default_rng(7)) for _ in range(2))
    assert np.array_equal(a, b)  # same generator state -> same moves


def test_warp_moves_features_to_their_targets_and_nothing_outside():
    p = _face68()
    q = random_targets(p, 0.12, np.random.default_rng(3))
    img = np.full((240, 220, 3), 40, np.uint8)
    yy, xx = np.mgrid[0:240, 0:220]
    probes = [39, 45, 33, 8]  # an eye corner of each eye, a nostril, the chin
    for i in probes:  # a small bright blob on each probed landmark
        img[(yy - p[i, 1]) ** 2 + (xx - p[i, 0]) ** 2 <= 4] = 255
    w = FaceWarp.plan(img.shape, p, q)
    out = w.apply(img)
    x0, y0, x1, y1 = w.region
    outside = np.ones(img.shape[:2], bool)
    outside[y0:y1, x0:x1] = False
    assert outside.any() and np.array_equal(out[outside], img[outside])  # untouched beyond the margin
    for i in probes:  # each blob's centre is now near the landmark's target
        near = ((yy - q[i, 1]) ** 2 + (xx - q[i, 0]) ** 2 <= 36) & (out[..., 0] > 150)
        assert near.sum() >= 5, i
        c = np.array([xx[near].mean(), yy[near].mean()])
        assert np.linalg.norm(c - q[i]) < 1.5, (i, c, q[i], p[i])
    same = FaceWarp.plan(img.shape, p, p).apply(img)  # no moves: (almost) the identity
    assert np.abs(same.astype(int) - img).max() <= 1


def test_anonymize_reshape_is_seeded_local_and_reported(tiny_model, monkeypatch, fixtures_dir):
    from facegan.ops.swap_gender import transform_genders

    monkeypatch.setenv("FACEGAN_GENDER_MODEL", str(tiny_model))
    rgb = read_image(fixtures_dir / "happy1.jpg")
    kw = dict(op="anonymize", strength=1.0, verify=False)
    plain = transform_genders(rgb, reshape=0.0, **kw)
    a = transform_genders(rgb, reshape=0.1, seed=5, **kw)
    b = transform_genders(rgb, reshape=0.1, seed=5, **kw)
    c = transform_genders(rgb, reshape=0.1, seed=6, **kw)
    assert a.faces[0]["reshape"] == 0.1 and "reshape" not in plain.faces[0]
    from facegan.ops.swap_gender import ANONYMIZE_RESHAPE

    assert transform_genders(rgb, **kw).faces[0]["reshape"] == ANONYMIZE_RESHAPE  # anonymize's default ...
    assert "reshape" not in transform_genders(rgb, strength=1.0, verify=False).faces[0]  # ... not swap-gender's
    assert np.array_equal(a.image, b.image) and not np.array_equal(a.image, c.image)
    diff = np.abs(a.image.astype(int) - plain.image).max(-1) > 0
    ys, xs = np.nonzero(diff)
    x0, y0, x1, y1 = a.faces[0]["box"]
    fw, fh = x1 - x0, y1 - y0
    assert diff.sum() > 500  # the face changed shape ...
    assert xs.min() > x0 - fw and xs.max() < x1 + fw and ys.min() > y0 - fh and ys.max() < y1 + fh  # ... near it only
    assert rgb.shape == a.image.shape and not np.shares_memory(rgb, a.image)


def test_anonymize_reshape_option_is_bounded(tiny_model, monkeypatch, fixtures_dir, tmp_path):
    from click.testing import CliRunner

    from facegan.cli import main

    monkeypatch.setenv("FACEGAN_GENDER_MODEL", str(tiny_model))
    r = CliRunner().invoke(main, ["anonymize", str(fixtures_dir / "happy1.jpg"), "-o", str(tmp_path / "o"),
                                  "--reshape", "0.5"])
    assert r.exit_code != 0 and "reshape" in r.output
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").rglob("*.jpg"))


def test_a_seeded_batch_is_reproducible_but_photos_get_their_own_draws(tiny_model, monkeypatch, fixtures_dir,
                                                                        tmp_path):
    import shutil

    from click.testing import CliRunner

    from facegan.cli import main
    from facegan.ops.base import photo_seed

    assert photo_seed(4, "a.jpg") == photo_seed(4, "a.jpg") != photo_seed(4, "b.jpg") != photo_seed(5, "b.jpg")
    monkeypatch.setenv("FACEGAN_GENDER_MODEL", str(tiny_model))
    src = tmp_path / "in"
    src.mkdir()
    for name in ("a.jpg", "b.jpg"):  # the same photo twice
        shutil.copy(fixtures_dir / "happy1.jpg", src / name)
    outs = []
    for run in ("o1", "o2"):
        r = CliRunner().invoke(main, ["anonymize", str(src), "-o", str(tmp_path / run), "--strength", "1",
                                      "--seed", "4", "-q"], catch_exceptions=False)
        assert r.exit_code == 0, r.output
        outs.append({n: read_image(tmp_path / run / n) for n in ("a.jpg", "b.jpg")})
    assert np.array_equal(outs[0]["a.jpg"], outs[1]["a.jpg"])  # reproducible across runs
    assert np.array_equal(outs[0]["b.jpg"], outs[1]["b.jpg"])
    assert not np.array_equal(outs[0]["a.jpg"], outs[0]["b.jpg"])  # but not one warp for the whole batch
