"""Small faces in large photos (faces/centerface.py's small-face pass, the ops' --detect-side)."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from facegan.errors import ConfigError
from facegan.io import read_image


def _canvas(fixtures_dir, width=4000, head=60, at=None):
    """A flat ``width`` x 3/4 photo with the studio portrait's head shrunk to ``head`` px wide, at ``at``."""
    src = read_image(fixtures_dir / "people_0.jpg")[40:360, 100:380]
    h = int(head * src.shape[0] / src.shape[1])
    img = np.full((width * 3 // 4, width, 3), 110, np.uint8)
    y, x = at or (img.shape[0] // 2, img.shape[1] // 3)
    img[y:y + h, x:x + head] = cv2.resize(src, (head, h), interpolation=cv2.INTER_AREA)
    return img, (x, y, x + head, y + h)


def _found(rgb, box):
    from facegan.faces.detect import detect_faces

    faces = detect_faces(rgb, "centerface")
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    return [f for f in faces if f.box[0] <= cx <= f.box[2] and f.box[1] <= cy <= f.box[3]], faces


def test_a_small_face_in_a_large_photo_is_found(fixtures_dir, monkeypatch):
    img, box = _canvas(fixtures_dir)
    monkeypatch.setenv("FACEGAN_DETECT_SIDE", "off")  # the main pass alone (before the small-face pass): missed
    assert _found(img, box)[0] == []
    monkeypatch.delenv("FACEGAN_DETECT_SIDE")
    hit, faces = _found(img, box)
    assert len(hit) == 1 and len(faces) == 1  # found once, nothing else


def test_full_resolution_runs_in_tiles_and_finds_a_face_on_a_tile_edge_once(fixtures_dir, monkeypatch):
    from facegan.faces import centerface

    # the first tile ends at TILE px; the face straddles x = TILE - TILE_OVERLAP / 2
    x = centerface.TILE - centerface.TILE_OVERLAP // 2 - 20
    img, box = _canvas(fixtures_dir, width=4800, head=40, at=(1800, x))
    monkeypatch.setenv("FACEGAN_DETECT_SIDE", "full")
    calls = []
    orig = centerface.CenterFaceDetector._pass
    monkeypatch.setattr(centerface.CenterFaceDetector, "_pass",
                        lambda self, rgb, s, thr: calls.append(rgb.shape[:2]) or orig(self, rgb, s, thr))
    hit, faces = _found(img, box)
    assert len(hit) == 1 and len(faces) == 1
    assert sum(max(c) <= centerface.TILE for c in calls) >= 4  # tiles of at most TILE px, not one 4800 px pass
    # a face in the photo's bottom-right corner: the last tiles reach the edges
    corner, cbox = _canvas(fixtures_dir, width=4800, head=40, at=(3600 - 60, 4800 - 50))
    hit, faces = _found(corner, cbox)
    assert len(hit) == 1 and len(faces) == 1


def test_detect_side_values(monkeypatch):
    from facegan.faces.centerface import detect_side

    assert detect_side(3072) == 3072  # unset: the detector's own
    for v, want in (("off", None), ("full", 0), ("0", 0), ("2048", 2048)):
        monkeypatch.setenv("FACEGAN_DETECT_SIDE", v)
        assert detect_side(3072) == want
    for bad in ("12", "big"):
        monkeypatch.setenv("FACEGAN_DETECT_SIDE", bad)
        with pytest.raises(ConfigError, match="--detect-side"):
            detect_side(3072)


def test_videos_detectors_skip_the_small_face_pass_unless_asked():
    from facegan import video
    from facegan.faces.detect import get_detector

    assert get_detector(video.DETECTOR).small_side is None
    assert get_detector(video.TURNED_DETECTOR).small_side is None
    assert get_detector("centerface").small_side == 3072


def test_cli_detect_side(fixtures_dir, tmp_path, monkeypatch):
    from PIL import Image

    from facegan.cli import main

    monkeypatch.setenv("FACEGAN_DETECT_SIDE", "")  # unset for the detector; restored after the test (the option
    img, _ = _canvas(fixtures_dir, width=3600, head=50)  # sets it for the process)
    p = tmp_path / "crowd.png"
    Image.fromarray(img).save(p)
    r = CliRunner().invoke(main, ["blur", str(p), "-o", str(tmp_path / "a"), "-q", "--detect-side", "off"])
    assert r.exit_code != 0 and "no face found" in r.output
    monkeypatch.setenv("FACEGAN_DETECT_SIDE", "")
    r = CliRunner().invoke(main, ["blur", str(p), "-o", str(tmp_path / "b"), "-q"])
    assert r.exit_code == 0, r.output
    assert '"faces": 1' in r.output
    r = CliRunner().invoke(main, ["blur", str(p), "-o", str(tmp_path / "c"), "-q", "--detect-side", "12"])
    assert r.exit_code == 17 and "--detect-side" in r.output


def test_the_job_records_its_detect_side(portrait_path, tmp_path, monkeypatch):
    import json

    from facegan.cli import main

    monkeypatch.setenv("FACEGAN_DETECT_SIDE", "")
    r = CliRunner().invoke(main, ["blur", str(portrait_path), "-o", str(tmp_path / "o"), "--dry-run",
                                  "--detect-side", "full"])
    assert r.exit_code == 0 and json.loads(r.output.strip().splitlines()[-1])["detect_side"] == "full"
    monkeypatch.setenv("FACEGAN_DETECT_SIDE", "")
    r = CliRunner().invoke(main, ["blur", str(portrait_path), "-o", str(tmp_path / "o"), "-q"])
    assert r.exit_code == 0, r.output
    assert json.loads((tmp_path / "o" / "report.json").read_text())["meta"]["detect_side"] == 3072
