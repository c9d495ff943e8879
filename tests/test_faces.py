"""Detection, landmarks, alignment and paste-back on real photos (tests/fixtures)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from facegan.errors import ConfigError
from facegan.faces.align import align_face, crop_mask, paste_back
from facegan.faces.detect import add_landmarks68, detect_faces, get_detector, list_detectors
from facegan.io import read_image


def _inside(pts, box, margin=0.0):
    x0, y0, x1, y1 = box
    mx, my = margin * (x1 - x0), margin * (y1 - y0)
    return np.all((pts[:, 0] >= x0 - mx) & (pts[:, 0] <= x1 + mx) & (pts[:, 1] >= y0 - my)
                  & (pts[:, 1] <= y1 + my))


def test_detectors_listed_and_unknown_refused():
    assert {"dlib-hog", "centerface", "dlib-cnn"} <= set(list_detectors())
    with pytest.raises(ConfigError):
        get_detector("no-such-detector")


@pytest.mark.parametrize("detector", ["dlib-hog", "centerface"])
def test_two_faces_found(two_faces_path, detector):
    rgb = read_image(two_faces_path)
    faces = detect_faces(rgb, detector=detector)
    assert len(faces) == 2
    # one face in each half of the side-by-side photo
    centres = sorted((f.box[0] + f.box[2]) / 2 for f in faces)
    assert centres[0] < rgb.shape[1] / 2 < centres[1]


@pytest.mark.parametrize("detector", ["dlib-hog", "centerface"])
def test_one_face_per_portrait(portrait_paths, detector):
    for p in portrait_paths:
        faces = detect_faces(read_image(p), detector=detector)
        assert len(faces) == 1, (p.name, len(faces))


@pytest.mark.parametrize("detector", ["dlib-hog", "centerface"])
def test_landmarks_inside_box(portrait_paths, detector):
    for p in portrait_paths[:4]:
        rgb = read_image(p)
        f = detect_faces(rgb, detector=detector)[0]
        lm = f.landmarks5
        assert lm.shape == (5, 2)
        assert _inside(lm, f.box, margin=0.05), p.name
        assert lm[0, 0] < lm[1, 0]  # left eye is left in the image
        assert lm[0, 1] < lm[2, 1] < lm[3, 1]  # eyes above nose above mouth
        add_landmarks68(rgb, f)
        assert f.landmarks68.shape == (68, 2)
        # the jaw line may leave the box a little; the inner face (points 17-67) must not
        assert _inside(f.landmarks68[17:], f.box, margin=0.1), p.name


def test_centerface_landmarks_agree_with_dlib(portrait_paths):
    """CenterFace faces carry dlib's 5 points refined from a HOG-like box: they land where the
    HOG detector's do (a few % of the eye distance), so templates fit the same way."""
    for p in portrait_paths[:3]:
        rgb = read_image(p)
        a = detect_faces(rgb, detector="dlib-hog")[0]
        b = detect_faces(rgb, detector="centerface")[0]
        ied = np.linalg.norm(a.landmarks5[1] - a.landmarks5[0])
        assert np.abs(a.extra["dlib5"] - b.extra["dlib5"]).max() < 0.08 * ied, p.name
        assert b.extra["centerface5"].shape == (5, 2)
        assert 0.5 <= b.score <= 1.0


@pytest.mark.parametrize("face_px", [350, 600, 900])
def test_centerface_large_faces(face_px):
    """A face filling a large photo (a selfie) is found, with its landmarks where they are at the size CenterFace
    was trained on: alone, the network missed a quarter of these faces at 350 px and put the eyes on the nose
    at 450-800 px; such faces now come from a coarse pass (faces.centerface.COARSE_SIDE)."""
    import cv2

    d = Path(__file__).parent / "fixtures" / "utk_test"
    for f in sorted(d.glob("*.jpg")):  # the two 200 px originals
        rgb = read_image(f)
        ref = detect_faces(rgb, detector="centerface")[0].landmarks5
        k = face_px / rgb.shape[0]
        big = cv2.resize(rgb, (face_px, face_px), interpolation=cv2.INTER_LANCZOS4)
        faces = detect_faces(big, detector="centerface")
        assert len(faces) == 1, (f.name, face_px, len(faces))
        err = np.abs(faces[0].landmarks5 / k - ref).max() / np.linalg.norm(ref[1] - ref[0])
        assert err < 0.2, (f.name, face_px, err)


def test_centerface_large_and_small_faces_together(two_faces_path):
    """The coarse pass only replaces large faces: a photo with a large face and small ones keeps them all."""
    import cv2

    small = read_image(two_faces_path)
    n_small = len(detect_faces(small, detector="centerface"))
    big = cv2.resize(read_image(sorted((Path(__file__).parent / "fixtures" / "utk_test").glob("*.jpg"))[0]),
                     (500, 500), interpolation=cv2.INTER_LANCZOS4)
    h = max(500, small.shape[0])
    canvas = np.full((h, 500 + small.shape[1], 3), 127, np.uint8)
    canvas[:500, :500] = big
    canvas[:small.shape[0], 500:] = small
    faces = detect_faces(canvas, detector="centerface")
    assert len(faces) == n_small + 1
    assert sum(f.width > 300 for f in faces) == 1


def test_dlib_cnn_finds_the_face(portrait_path):
    rgb = read_image(portrait_path)
    faces = detect_faces(rgb, detector="dlib-cnn")
    assert len(faces) == 1
    assert _inside(faces[0].landmarks5[:3], faces[0].box, margin=0.1)


def _face_region(aligned, shape):
    import cv2

    m = crop_mask(aligned.template, aligned.size)
    return cv2.warpAffine(m, aligned.inverse, (shape[1], shape[0])) > 0.99


def _psnr(a, b, mask):
    mse = np.mean((a[mask].astype(np.float64) - b[mask].astype(np.float64)) ** 2)
    return 10 * np.log10(255.0 ** 2 / max(mse, 1e-12))


@pytest.mark.parametrize("name", ["happy.jpg", "people_0.jpg"])
def test_align_paste_back_round_trip(fixtures_dir, name):
    rgb = read_image(fixtures_dir / name)
    f = detect_faces(rgb)[0]
    a = align_face(rgb, f, "utkface", 256)
    assert a.crop.shape == (256, 256, 3)
    region = _face_region(a, rgb.shape)
    assert region.sum() > 1000
    # replace: the unchanged crop resampled back is close to the photo. Measured on the fixtures
    # (faces <= 260 px wide): utkface 43-49 dB, ffhq 38-45 dB. Faces much larger than the crop
    # lose detail (down to ~27 dB on 1024-px portraits; benchmarks/results/pipeline.md).
    out = paste_back(rgb, a, a.crop, mode="replace")
    assert _psnr(out, rgb, region) > 40.0
    af = align_face(rgb, f, "ffhq", 256)
    out = paste_back(rgb, af, af.crop, mode="replace")
    assert _psnr(out, rgb, _face_region(af, rgb.shape)) > 36.0
    # residual: an unchanged crop is a zero change, so the photo comes back exactly
    out = paste_back(rgb, a, a.crop.copy(), mode="residual")
    assert np.array_equal(out, rgb)
    # and a change made in the crop shows up in the face region only
    edited = np.clip(a.crop.astype(int) + 40, 0, 255).astype(np.uint8)
    out = paste_back(rgb, a, edited, mode="residual")
    diff = np.abs(out.astype(int) - rgb.astype(int)).sum(-1)
    assert diff[region].mean() > 20
    import cv2

    support = cv2.warpAffine(np.ones((256, 256), np.float32), a.inverse, rgb.shape[1::-1]) > 0
    support = cv2.dilate(support.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    assert diff[~support].max() == 0  # nothing changes outside the crop's footprint


@pytest.mark.parametrize("k", [1, 2, 3])
def test_centerface_turned_faces(portrait_rgb, k):
    """A face turned by quarters (a phone photo without its EXIF turn, a head on a pillow): found, with the points
    of the upright face turned with it and dlib's points fitted where the face is upright (the upright passes alone
    put them a whole eye distance off on every such face: scripts/centerface_rotation.py)."""
    up = max(detect_faces(portrait_rgb, "centerface"), key=lambda f: f.width * f.height)
    img = np.ascontiguousarray(np.rot90(portrait_rgb, k))
    faces = detect_faces(img, "centerface")
    assert len(faces) == 1
    f = faces[0]
    from facegan.faces.centerface import _unturn

    # where the upright face's points lie in the turned photo (np.rot90 by 4 - k turns it back)
    want = _unturn(up.landmarks5, 4 - k, *img.shape[:2])
    iod = np.linalg.norm(up.landmarks5[0] - up.landmarks5[1])
    assert np.linalg.norm(f.landmarks5[:3] - want[:3], axis=1).max() < 0.15 * iod  # eyes and nose
    assert "upright" in f.extra and abs(abs(f.extra["roll"]) - (180 if k == 2 else 90)) < 20
    assert f.to_dict()["roll"] == f.extra["roll"] and "roll" not in up.to_dict()  # analyze says so
    from facegan.judges.identity import get_identity

    ident = get_identity()  # dlib's chip of the turned face is the upright face's: the same person, closely
    assert ident.distance(ident.embed(img, f), ident.embed(portrait_rgb, up)) < 0.25
    from facegan.faces.detect import shape_upright

    p68 = shape_upright(img, f, 68)
    add_landmarks68(portrait_rgb, up)
    want68 = _unturn(up.landmarks68, 4 - k, *img.shape[:2])
    assert np.median(np.linalg.norm(p68 - want68, axis=1)) < 0.1 * iod
    if k == 1:  # swap-gender on the turned photo: its report row says the face was found turned
        from facegan.ops.swap_gender import transform_genders

        (row,) = transform_genders(img, strength=1.0, verify=False).faces
        assert row["status"] == "changed" and row["roll"] == f.extra["roll"]


def test_centerface_turned_passes_leave_upright_faces_alone(portrait_paths, monkeypatch):
    """Upright faces come from the upright passes as before the turned ones were added."""
    for p in portrait_paths:
        rgb = read_image(p)
        with_turns = detect_faces(rgb, "centerface")
        monkeypatch.setenv("FACEGAN_TURN_SIDE", "0")
        without = detect_faces(rgb, "centerface")
        monkeypatch.delenv("FACEGAN_TURN_SIDE")
        assert len(with_turns) == len(without)
        for a, b in zip(with_turns, without):
            assert np.allclose(a.landmarks5, b.landmarks5) and a.box == b.box


def test_reshape_moves_a_rolled_face_along_its_own_axes():
    from facegan.faces.reshape import random_targets

    # a level 68-point face: eyes at y 40, mouth below
    p = np.zeros((68, 2))
    p[:, 0] = np.linspace(20, 80, 68)
    p[:, 1] = 60
    p[36:42] = [30, 40]
    p[42:48] = [70, 40]
    p[48:68, 1] = 80
    q = random_targets(p, 0.1, np.random.default_rng(1))
    t = np.deg2rad(90)
    m = np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])
    pr = p @ m.T  # the same face rolled by 90 degrees
    qr = random_targets(pr, 0.1, np.random.default_rng(1))
    # the same moves, turned with the face (about its mean point)
    assert np.allclose(qr - pr, (q - p) @ m.T, atol=1e-6)
    assert np.abs(q - p).max() > 1.0  # it moved
