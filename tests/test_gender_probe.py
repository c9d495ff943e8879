"""The gender probe on dlib's identity descriptor, which helps the ops read an original's gender (the direction)."""
import json
from pathlib import Path

import numpy as np
import pytest

from facegan.io import read_image

ROOT = Path(__file__).resolve().parents[1]
WEIGHTS = ROOT / "src" / "facegan" / "weights" / "gender-dlib-probe"


def test_shipped_probe_loads_hash_checked_and_records_its_measurements():
    from facegan.judges.gender_probe import get_gender_probe
    from facegan.weights import sha256_file

    manifest = json.loads((WEIGHTS / "manifest.json").read_text())
    assert manifest["sha256"] == sha256_file(WEIGHTS / "model.safetensors")
    pr = get_gender_probe()
    assert pr.weight.shape == (128,) and pr.features == "dlib-resnet-v1"
    m = json.loads((WEIGHTS / "metrics.json").read_text())
    # the rule the ops ship was chosen on train cross-validation: fewer faces read wrongly than the vote
    cv = m["train_cv"]
    assert cv["vote + probe (shipped rule)"]["wrong"] < cv["vote (judge 1 + faceres)"]["wrong"]
    assert cv["judge 1 + probe"]["wrong"] < cv["judge 1"]["wrong"]
    assert (WEIGHTS / "MODEL_CARD.md").read_text().count(str(m["test"]["vote + probe (shipped rule)"]["wrong"])) >= 1


def test_probe_reads_labelled_utkface_faces(fixtures_dir):
    """The fixtures' UTKFace photos (labels in their names; none of them in the probe's train split)."""
    from facegan.faces.detect import detect_faces
    from facegan.judges.gender_probe import get_gender_probe
    from facegan.judges.identity import get_identity
    from facegan.train.utkface import parse_name

    ident, pr = get_identity(), get_gender_probe()
    right, n = 0, 0
    for path in sorted((fixtures_dir / "utk_test").glob("*.jpg")) + sorted((fixtures_dir / "utk_test").glob("*.png")):
        lab = parse_name(path)
        if lab is None or lab.split == "train":
            continue
        rgb = read_image(path)
        faces = detect_faces(rgb)
        if not faces:
            continue
        female = lab.gender == 1
        p = pr.p_female(ident.embed(rgb, max(faces, key=lambda f: f.width * f.height)))
        assert 0.0 < p < 1.0
        right += (p >= 0.5) == female
        n += 1
    assert n >= 6 and right >= n - 1, (right, n)


def _judge(pf):
    """A gender judge that reads every face as female with ``pf``."""
    from types import SimpleNamespace

    return SimpleNamespace(name="fixed", predict=lambda rgb, d5, face=None: {
        "gender": "female" if pf >= 0.5 else "male", "p_female": pf, "age": 30.0, "judge": "fixed"})


def test_read_source_averages_the_judge_with_the_probe(portrait_path):
    from facegan.faces.detect import detect_faces
    from facegan.judges.gender_probe import get_gender_probe, read_source
    from facegan.judges.identity import get_identity

    rgb = read_image(portrait_path)
    face = detect_faces(rgb)[0]
    ident = get_identity()
    d5 = ident.dlib5_of(rgb, face)
    desc = ident.embed(rgb, face)
    p = get_gender_probe().p_female(desc)
    r = read_source(_judge(0.2), rgb, d5, face)
    assert r["p_female"] == pytest.approx((0.2 + p) / 2) and r["p_female_judge"] == 0.2 and r["p_female_probe"] == p
    assert r["gender"] == ("female" if (0.2 + p) / 2 >= 0.5 else "male")
    assert r["judge"] == "fixed+gender-dlib-probe" and r["descriptor_model"] == ident.name
    assert np.allclose(r["descriptor"], desc)
    alone = read_source(_judge(0.2), rgb, d5, face, probe=False)
    assert alone["p_female"] == 0.2 and "p_female_probe" not in alone and alone["judge"] == "fixed"
