"""k-Same blending (facegan.faces.ksame): the shipped bank, the change it computes and anonymize --ksame."""
import cv2
import numpy as np
import pytest

from facegan.io import read_image


def test_shipped_bank_holds_no_photo_and_loads():
    from facegan.faces.ksame import LOW, SHIPPED, get_bank
    from facegan.weights import model_dir

    bank = get_bank()
    assert bank.groups == ["male", "female"] and bank.low == LOW
    assert bank.basis.shape == (128, LOW * LOW * 3) and bank.codes.shape[1] == 128
    assert set(np.unique(bank.labels)) == {0, 1} and len(bank.labels) == len(bank.codes) > 4000
    assert (model_dir(SHIPPED) / "MODEL_CARD.md").exists()


def test_change_moves_towards_the_target_groups_mean_and_keeps_the_mean_colour():
    from facegan.faces.ksame import _ellipse_low, face_vectors, get_bank

    bank = get_bank()
    rng = np.random.default_rng(0)
    crop = (rng.random((128, 128, 3)) * 60 + 100).astype(np.uint8)
    ch = bank.change(crop, "female", k=8)
    assert ch.shape == (128, 128, 3) and ch.dtype == np.float32
    m = _ellipse_low()
    outside = (face_vectors(crop[None])[0].reshape(32, 32, 3) == 0).all(-1) & (m[..., 0] == 0)
    assert outside.any()
    # inside the face ellipse the change has (almost) no mean colour: the skin tone stays
    low = cv2.resize(ch, (32, 32), interpolation=cv2.INTER_AREA)
    mean_shift = np.abs((low * m).sum((0, 1)) / m.sum())
    assert (mean_shift < 3.0).all(), mean_shift
    # alpha 1 lands nearer the neighbours' mean than the crop was (in the bank's face vectors)
    out = bank.apply(crop, ch, 1.0)
    v0, v1 = face_vectors(crop[None])[0], face_vectors(out[None])[0]
    q = (v0 - bank.mean) @ bank.basis.T
    pool = bank.codes[bank.labels == 1]
    target = bank.mean + pool[np.argsort(((pool - q) ** 2).sum(1))[:8]].mean(0) @ bank.basis
    assert np.linalg.norm(v1 - target) < 0.5 * np.linalg.norm(v0 - target)
    assert np.array_equal(bank.apply(crop, ch, 0.0), crop)
    with pytest.raises(ValueError, match="no group"):
        bank.change(crop, "robot")


def test_hair_guard_keeps_hair_and_the_skins_brightness():
    """Dark hair reaching into the face ellipse (bangs, long hair at the sides): the guarded change leaves
    it alone and keeps the skin's brightness; unguarded, hair turns towards skin and the skin darkens."""
    from facegan.faces.ksame import INNER_BOX, _box, _ellipse, get_bank, hair_guard

    bank = get_bank()
    rng = np.random.default_rng(1)
    crop = np.clip(np.array([205, 165, 140]) + rng.normal(0, 4, (128, 128, 3)), 0, 255).astype(np.uint8)
    hair = np.zeros((128, 128), bool)
    hair[:17] = True  # bangs, above the inner face (INNER_BOX starts at y 0.15)
    hair[:, :20] = hair[:, 106:] = True  # long hair at the sides
    crop[hair] = (45, 32, 28)
    g = hair_guard(crop)[..., 0]
    ys, xs = _box(INNER_BOX, 32)
    assert g.shape == (32, 32) and g[ys.start + 2:ys.stop - 2, xs.start + 2:xs.stop - 2].min() > 0.99
    assert g[1:3, 10:22].max() < 0.1 and g[12:20, 1:3].max() < 0.1  # hair: (almost) no change
    guarded, plain = bank.change(crop, "male"), bank.change(crop, "male", guard=False)
    inside = (_ellipse(128) > 0.5) & hair
    assert inside.sum() > 200
    assert np.abs(guarded[inside]).mean() < 0.3 * np.abs(plain[inside]).mean()  # (a soft edge at the hairline)
    skin = np.zeros((128, 128), bool)
    skin[_box(INNER_BOX, 128)] = True
    skin &= ~hair
    assert plain[skin].mean() < -8  # unguarded: the hair pulls the mean, the skin darkens
    assert abs(float(guarded[skin].mean())) < 3
    assert np.abs(guarded[skin]).mean() > 3  # the face itself still changes


def test_anonymize_ksame_changes_more_and_says_so(fixtures_dir, monkeypatch, tiny_model):
    from facegan.errors import ConfigError
    from facegan.ops import swap_gender

    monkeypatch.setenv("FACEGAN_GENDER_MODEL", str(tiny_model))
    rgb = read_image(fixtures_dir / "happy1.jpg")
    kw = dict(op="anonymize", strength=1.0, seed=3, reshape=0.0, verify=False)
    plain = swap_gender.transform_genders(rgb, ksame=0.0, **kw)
    ks = swap_gender.transform_genders(rgb, ksame=1.5, **kw)
    # no retries here (an explicit strength): every face keeps the light start, KSAME_START of the factor
    assert "ksame" not in plain.faces[0] and ks.faces[0]["ksame"] == 1.5 * swap_gender.KSAME_START
    # anonymize's default is k-Same (ANONYMIZE_KSAME); swap-gender's is none
    assert swap_gender.transform_genders(rgb, **kw).faces[0]["ksame"] == (
        swap_gender.ANONYMIZE_KSAME * swap_gender.KSAME_START) > 0
    assert "ksame" not in swap_gender.transform_genders(rgb, strength=1.0, verify=False).faces[0]
    d_plain = np.abs(plain.image.astype(int) - rgb).mean()
    d_ks = np.abs(ks.image.astype(int) - rgb).mean()
    assert d_ks > d_plain + 0.2, (d_plain, d_ks)
    assert np.array_equal(ks.image[:5], rgb[:5])  # the change stays on the face (paste-back's ellipse)
    with pytest.raises(ConfigError, match="ksame must be between"):
        swap_gender.transform_genders(rgb, ksame=3.0, **kw)


@pytest.fixture
def scripted(fixtures_dir, monkeypatch, tiny_model):
    """anonymize on a real photo with the tiny model, a gender judge that reads any changed photo as a
    woman, and identity verdicts the test scripts (the real descriptors): returns (photo, verdicts)."""
    from facegan.judges import agegender, faceres
    from facegan.ops import swap_gender

    monkeypatch.setenv("FACEGAN_GENDER_MODEL", str(tiny_model))
    monkeypatch.setattr(swap_gender, "RESHAPE_DRAWS", 1)
    rgb = read_image(fixtures_dir / "happy1.jpg")
    ident = swap_gender._identity()
    answers: list = []

    class Scripted:  # the real descriptors, verdicts from the test
        name = ident.name
        embed = staticmethod(ident.embed)
        similarity = staticmethod(ident.similarity)

        @staticmethod
        def same_person(a, b, margin=0.0):
            return answers.pop(0) if answers else False

    class Sure:
        name = "sure"

        def predict(self, img, d5, face=None):
            changed = not np.array_equal(img, rgb)
            return {"gender": "female" if changed else "male", "p_female": 0.99 if changed else 0.01, "age": 30.0}

    monkeypatch.setattr(swap_gender, "_identity", lambda: Scripted)
    monkeypatch.setattr(agegender, "get_age_gender", lambda: Sure())
    monkeypatch.setattr(faceres, "available", lambda: False)
    return rgb, answers


# the direction read by the scripted judge alone (no gender probe)
ANON = dict(op="anonymize", strength=1.0, max_strength=1.5, reshape=0.0, verify=False, ksame=1.0, source_probe=False)


def test_a_face_still_matched_gets_the_full_blend_before_a_stronger_change(scripted):
    """anonymize starts k-Same at KSAME_START of the factor; a face the identity model still matches gets
    the full factor first, and only if it is still matched a stronger translation."""
    from facegan.ops import swap_gender

    rgb, answers = scripted
    answers[:] = [True, False]  # matched at the light blend, not after the full one
    row = swap_gender.transform_genders(rgb, **ANON).faces[0]
    assert row["ksame"] == 1.0 and row["strengths_tried"] == [1.0]
    answers[:] = [False]  # not matched at the light blend: it stays
    row = swap_gender.transform_genders(rgb, **ANON).faces[0]
    assert row["ksame"] == swap_gender.KSAME_START and row["strengths_tried"] == [1.0]
    answers[:] = [True, True]  # still matched after the full blend: a stronger translation too
    row = swap_gender.transform_genders(rgb, **ANON).faces[0]
    assert row["ksame"] == 1.0 and row["strengths_tried"] == [1.0, 1.25]


def test_ksame_steps_climb_one_at_a_time(scripted, monkeypatch):
    """With a finer KSAME_STEPS ladder a still-matched face climbs it step by step and stops at the
    first step the identity model no longer matches."""
    from facegan.ops import swap_gender

    monkeypatch.setattr(swap_gender, "KSAME_STEPS", (0.25, 0.5, 1.0))
    assert [swap_gender._next_ksame(c, 1.2) for c in (0.3, 0.6, 1.2)] == [0.6, 1.2, 1.2]
    rgb, answers = scripted
    for verdicts, ksame, tried in (([False], 0.25, [1.0]), ([True, False], 0.5, [1.0]),
                                   ([True, True, False], 1.0, [1.0]), ([True, True, True], 1.0, [1.0, 1.25])):
        answers[:] = list(verdicts)
        row = swap_gender.transform_genders(rgb, **ANON).faces[0]
        assert row["ksame"] == ksame and row["strengths_tried"] == tried, (verdicts, row)
        assert not answers  # every verdict was asked for


def test_a_bank_built_from_your_own_faces_is_used_and_named(fixtures_dir, tmp_path, monkeypatch):
    """`facegan data ksame-bank SRC OUT` from male/ and female/ folders; FACEGAN_KSAME_BANK=OUT makes
    anonymize use it, and each row names the bank it used."""
    import json
    import shutil

    from click.testing import CliRunner

    from facegan.cli import main
    from facegan.faces import ksame
    from facegan.io import read_image
    from facegan.ops import swap_gender

    src = tmp_path / "faces"
    for f in sorted((fixtures_dir / "utk_test").glob("*.png")):
        g = "male" if f.name.split("_")[1] == "0" else "female"
        (src / g).mkdir(parents=True, exist_ok=True)
        shutil.copy(f, src / g / f.name)
    out = tmp_path / "my-bank"
    r = CliRunner().invoke(main, ["data", "ksame-bank", str(src), str(out), "-q", "--components", "8"])
    assert r.exit_code == 0, r.output
    m = json.loads(r.output.strip().splitlines()[-1])
    assert m["name"] == "my-bank" and m["faces"]["male"] >= 1 and m["faces"]["female"] >= 1
    assert m["components"] <= 8 and (out / "model.safetensors").exists()
    # a second build into the same folder is refused without --overwrite
    r = CliRunner().invoke(main, ["data", "ksame-bank", str(src), str(out), "-q"])
    assert r.exit_code != 0
    monkeypatch.setenv(ksame.BANK_ENV, str(out))
    bank = ksame.get_bank()
    assert bank.name == "my-bank" and len(bank.labels) == m["faces"]["male"] + m["faces"]["female"]
    rgb = read_image(fixtures_dir / "happy1.jpg")
    row = swap_gender.transform_genders(rgb, op="anonymize", seed=0, verify=False, max_strength=1.0).faces[0]
    assert row["ksame_bank"] == "my-bank"
    monkeypatch.delenv(ksame.BANK_ENV)
    assert ksame.get_bank().name == ksame.SHIPPED
