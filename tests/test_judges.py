"""Judges on real photos: expression (mini-Xception port), identity (dlib ResNet), analyze_face."""
from __future__ import annotations

import shutil

import cv2
import numpy as np
import pytest
import torch

from facegan.errors import ModelError
from facegan.faces.align import align_face
from facegan.faces.detect import detect_faces
from facegan.io import read_image
from facegan.judges import analyze_face
from facegan.judges.expression import (LABELS, WEIGHTS_DIR, ExpressionJudge, MiniXception,
                                       _same_maxpool, get_expression)
from facegan.judges.identity import get_identity


def _face(path):
    rgb = read_image(path)
    faces = detect_faces(rgb)
    assert len(faces) == 1
    return rgb, faces[0]


# -- expression ----------------------------------------------------------------------------------
@pytest.mark.parametrize("name,label", [("happy.jpg", "happy"), ("happy1.jpg", "happy"), ("sad.jpg", "sad")])
def test_expression_on_photos(fixtures_dir, name, label):
    rgb, f = _face(fixtures_dir / name)
    r = get_expression().predict(rgb, f)
    assert r["expression"] == label, r
    p = r["probabilities"]
    assert set(p) == set(LABELS)
    assert abs(sum(p.values()) - 1) < 1e-3
    assert p[label] > 0.5


def test_expression_same_person_happy_vs_sad(same_person_pair):
    """One person, two expressions: the happy photo scores higher on happy and lower on sad."""
    (a, fa), (b, fb) = _face(same_person_pair[0]), _face(same_person_pair[1])
    j = get_expression()
    pa, pb = j.predict(a, fa)["probabilities"], j.predict(b, fb)["probabilities"]
    assert pa["happy"] > pb["happy"] + 0.5
    assert pb["sad"] > pa["sad"] + 0.5


def test_same_maxpool_matches_tensorflow_padding():
    """TF 'same' 3x3/2 pooling pads the odd pixel at the bottom/right: output ceil(n/2)."""
    for n in (15, 8, 60):
        x = torch.arange(n * n, dtype=torch.float32).reshape(1, 1, n, n)
        y = _same_maxpool(x)
        assert y.shape[-1] == -(-n // 2)
        # values increase along rows/cols, so each window's max is its bottom-right valid pixel
        pad_total = max((y.shape[-1] - 1) * 2 + 3 - n, 0)
        lo = pad_total // 2
        i = np.arange(y.shape[-1]) * 2 - lo + 2
        i = np.minimum(i, n - 1)
        expected = (i[:, None] * n + i[None, :]).astype(np.float32)
        assert np.array_equal(y[0, 0].numpy(), expected)


def test_minixception_shapes_and_weights_load():
    net = MiniXception()
    assert sum(p.numel() for p in net.parameters()) + sum(b.numel() for n, b in net.named_buffers()
                                                          if "num_batches" not in n) == 58423
    out = get_expression().net(torch.zeros(2, 1, 64, 64))
    assert out.shape == (2, 7)


def test_expression_weights_hash_checked(tmp_path):
    d = tmp_path / "w"
    shutil.copytree(WEIGHTS_DIR, d)
    data = bytearray((d / "model.safetensors").read_bytes())
    data[-1] ^= 0xFF
    (d / "model.safetensors").write_bytes(bytes(data))
    with pytest.raises(ModelError):
        ExpressionJudge(d)
    (d / "model.safetensors").unlink()
    with pytest.raises(ModelError):
        ExpressionJudge(d)


# -- identity ------------------------------------------------------------------------------------
def test_identity_same_photo_flipped_and_rescaled(fixtures_dir):
    ident = get_identity()
    rgb, f = _face(fixtures_dir / "people_0.jpg")
    e = ident.embed(rgb, f)
    assert e.shape == (128,) and e.dtype == np.float32
    flipped = np.ascontiguousarray(rgb[:, ::-1])
    e_flip = ident.embed(flipped, detect_faces(flipped)[0])
    small = cv2.resize(rgb, None, fx=0.6, fy=0.6, interpolation=cv2.INTER_AREA)
    e_small = ident.embed(small, detect_faces(small)[0])
    for other in (e_flip, e_small):
        c = ident.compare(e, other)
        assert c["same_person"] and c["identity_distance"] < 0.3, c  # measured 0.08-0.19
        assert c["identity_similarity"] > 0.95


def test_identity_two_photos_of_one_person_vs_others(fixtures_dir, same_person_pair):
    ident = get_identity()
    ea = ident.embed(*_face(same_person_pair[0]))
    eb = ident.embed(*_face(same_person_pair[1]))
    assert ident.same_person(ea, eb)  # measured distance 0.39
    for other in ("happy1.jpg", "people_0.jpg", "art_18.jpg"):
        eo = ident.embed(*_face(fixtures_dir / other))
        assert not ident.same_person(ea, eo), other
        assert ident.distance(ea, eo) > ident.distance(ea, eb)
        assert ident.similarity(ea, eo) < ident.similarity(ea, eb)


def test_identity_embed_crop_matches_photo(fixtures_dir):
    """Embedding an aligned crop (what an op's output looks like) finds the same person."""
    ident = get_identity()
    rgb, f = _face(fixtures_dir / "happy1.jpg")
    e = ident.embed(rgb, f)
    for tpl in ("utkface", "ffhq"):
        a = align_face(rgb, f, tpl, 256)
        ec = ident.embed_crop(a.crop, tpl)
        assert ident.distance(e, ec) < 0.3, tpl  # measured ~0.1 for utkface
    batch = ident.embed_crops(np.stack([align_face(rgb, f, "utkface", 200).crop] * 2), "utkface")
    assert batch.shape == (2, 128) and np.allclose(batch[0], batch[1])


def test_identity_compare_fields():
    ident = get_identity()
    a = np.ones(128, np.float32) * 0.1
    c = ident.compare(a, a * 2)
    assert c["identity_similarity"] == pytest.approx(1.0)
    assert c["identity_distance"] == pytest.approx(np.linalg.norm(a), abs=1e-3)
    assert c["same_person"] is (c["identity_distance"] < 0.6)
    assert c["identity_threshold"] == 0.6


def test_identity_runs_dlibs_network_in_torch_with_dlibs_numbers(fixtures_dir):
    """The default backend is dlib's own network run by PyTorch; on real face chips its descriptors are
    dlib's compute_face_descriptor's (measured within 5e-7 on 230 faces)."""
    ident = get_identity()
    assert ident.backend == "torch" and ident.net is not None
    chips = []
    for name in ("people_0.jpg", "happy1.jpg", "two_faces.jpg", "art_18.jpg"):
        rgb = read_image(fixtures_dir / name)
        chips += [ident.chip(rgb, ident.dlib5_of(rgb, f)) for f in detect_faces(rgb)]
    assert len(chips) >= 5
    ours = ident.embed_chips(chips)
    theirs = np.asarray([np.asarray(d) for d in ident.model.compute_face_descriptor(chips)], np.float32)
    assert ours.shape == (len(chips), 128) and ours.dtype == np.float32
    assert np.abs(ours - theirs).max() < 1e-4
    # the pairs' distances (what same_person decides on) agree too
    for i in range(len(chips) - 1):
        assert ident.distance(ours[i], ours[i + 1]) == pytest.approx(ident.distance(theirs[i], theirs[i + 1]), abs=1e-4)


def test_identity_backend_falls_back_to_dlib(tmp_path, monkeypatch):
    from facegan.judges import dlib_torch
    from facegan.judges.identity import IdentityJudge

    monkeypatch.setenv("FACEGAN_IDENTITY_BACKEND", "dlib")
    assert IdentityJudge().backend == "dlib"
    monkeypatch.delenv("FACEGAN_IDENTITY_BACKEND")
    # a file that is not that network: the parser refuses it, and the judge keeps dlib
    bad = tmp_path / "other.dat"
    bad.write_bytes(b"\x01\x15input_rgb_image_sized" + bytes(64))
    with pytest.raises(ValueError):
        dlib_torch.read_params(bad)
    assert dlib_torch.load_net(bad) is None
    monkeypatch.setattr(dlib_torch, "load_net", lambda path: None)
    j = IdentityJudge()
    assert j.backend == "dlib" and j.net is None
    # a network that loads but does not give dlib's descriptors on the test chip is not used either
    monkeypatch.setattr(dlib_torch, "load_net", lambda path: (lambda x: torch.zeros(len(x), 128)))
    assert IdentityJudge().backend == "dlib"
    e = j.embed_chips([np.full((150, 150, 3), 128, np.uint8)])
    assert e.shape == (1, 128)


# -- everything on one face ------------------------------------------------------------------------
def test_analyze_face_fields(fixtures_dir):
    rgb, f = _face(fixtures_dir / "people_0.jpg")
    r = analyze_face(rgb, f, embedding=True)
    assert r["gender"] == "female" and r["p_female"] > 0.9
    assert 15 < r["age"] < 50
    assert r["expression"] in LABELS and r["expression_judge"] == "fer-minixception-v1"
    assert len(r["embedding"]) == 128
    assert "embedding" not in analyze_face(rgb, f)


def test_gender_judge_reads_an_antialiased_chip_and_its_mirror(portrait_path):
    from facegan.judges.agegender import get_age_gender
    from facegan.ops.swap_gender import dlib5_of

    j = get_age_gender()
    rgb = read_image(portrait_path)
    face = max(detect_faces(rgb), key=lambda f: f.width * f.height)
    d5 = dlib5_of(rgb, face)
    chip = j.gender_chip(rgb, d5)
    big = j.chip(rgb, d5, 32 * j.OVERSAMPLE)
    assert chip.shape == (32, 32, 3) and np.allclose(chip, cv2.resize(big, (32, 32), interpolation=cv2.INTER_AREA))
    plain, mirrored = j.gender_chips(np.stack([chip, np.ascontiguousarray(chip[:, ::-1])]))
    got = j.predict(rgb, d5)
    assert got["p_female"] == pytest.approx((plain + mirrored) / 2, abs=1e-6) and got["judge"].endswith("-tta")
    # a mirror-image chip reads exactly the same
    assert j.p_female(np.stack([chip]))[0] == pytest.approx(j.p_female(np.stack([chip[:, ::-1]]))[0], abs=1e-6)
