"""Videos through the ops (facegan.video): tracks, one decision per face, audio kept, synthetic tag,
resume, bad files; the tracker; a pinned decision reproduces its photo."""
from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

av = pytest.importorskip("av")

from facegan.errors import NoFaceError  # noqa: E402
from facegan.faces.track import Tracker  # noqa: E402
from facegan.faces.types import Face  # noqa: E402
from facegan.io import read_image  # noqa: E402
from facegan.io.video import probe_video, read_video_metadata  # noqa: E402
from facegan.ops import get_op  # noqa: E402
from facegan.run import run_op  # noqa: E402


def make_clip(path, rgb, n=10, fps=8, shift=2, audio=True):
    """A short H.264 clip panning across ``rgb`` by ``shift`` px a frame, with a 440 Hz AAC tone."""
    h, w = rgb.shape[:2]
    c = av.open(str(path), "w")
    v = c.add_stream("libx264", rate=fps)
    v.width, v.height, v.pix_fmt = w - w % 2 - 2 * n, h - h % 2, "yuv420p"
    a = c.add_stream("aac", rate=16000) if audio else None
    for i in range(n):
        fr = np.ascontiguousarray(rgb[:v.height, i * shift:i * shift + v.width])
        for p in v.encode(av.VideoFrame.from_ndarray(fr, format="rgb24")):
            c.mux(p)
    for p in v.encode():
        c.mux(p)
    if a is not None:
        t = np.arange(int(16000 * n / fps)) / 16000
        af = av.AudioFrame.from_ndarray((0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None],
                                        format="fltp", layout="mono")
        af.sample_rate = 16000
        for p in [*a.encode(af), *a.encode()]:
            c.mux(p)
    c.close()
    return path


def _clip_of(path, frames, fps=10):
    """An H.264 clip of exactly these frames (no audio)."""
    c = av.open(str(path), "w")
    v = c.add_stream("libx264", rate=fps)
    v.height, v.width = frames[0].shape[:2]
    v.pix_fmt = "yuv420p"
    for fr in frames:
        for p in v.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(fr), format="rgb24")):
            c.mux(p)
    for p in v.encode():
        c.mux(p)
    c.close()
    return path


def one_frame_video(path, rgb, codec, pix_fmt, rate=8):
    """A one-frame video of ``rgb`` in ``codec`` / ``pix_fmt`` (the container from the file name)."""
    c = av.open(str(path), "w")
    v = c.add_stream(codec, rate=rate)
    v.width, v.height, v.pix_fmt = rgb.shape[1], rgb.shape[0], pix_fmt
    for p in [*v.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")), *v.encode()]:
        c.mux(p)
    c.close()
    return path


def frames_of(path):
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


def streams_of(path):
    with av.open(str(path)) as c:
        return sorted(s.type for s in c.streams)


def sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def face(x, y, s=40):
    lm = np.array([[x + 12, y + 15], [x + 28, y + 15], [x + 20, y + 24], [x + 14, y + 31], [x + 26, y + 31]], float)
    return Face((x, y, x + s, y + s), 0.9, lm, None, "test")


def test_tracker_joins_fills_gaps_and_separates_faces():
    tr = Tracker(max_gap=3, smooth=0)
    for t in range(8):
        dets = [face(10 + 2 * t, 10), face(200, 100)]
        if t == 3:
            dets = dets[1:]  # the detector misses the first face once
        if t >= 6:
            dets = dets[:1]  # the second face leaves
        tr.update(t, dets)
    tracks = tr.finish()
    assert len(tracks) == 2
    a = next(k for k in tracks if k.faces[0].box[0] < 100)
    assert sorted(a.faces) == list(range(8)) and a.detected() == 7
    assert a.faces[3].extra.get("filled") and a.faces[3].box[0] == pytest.approx(16.0)  # halfway 14 .. 18
    b = next(k for k in tracks if k is not a)
    assert sorted(b.faces) == list(range(6))
    assert a.keyframe() in a.faces and not a.faces[a.keyframe()].extra.get("filled")


def test_tracker_smooths_jitter():
    tr = Tracker(smooth=2)
    xs = [10, 14, 10, 14, 10, 14, 10]
    for t, x in enumerate(xs):
        tr.update(t, [face(x, 10)])
    (k,) = tr.finish()
    inner = [k.faces[t].box[0] for t in range(2, 5)]
    assert max(inner) - min(inner) < 1.0  # the raw boxes jump 4 px a frame


def test_blur_video_keeps_audio_and_frames_and_input(tmp_path, two_faces_path):
    (tmp_path / "in").mkdir()
    clip = make_clip(tmp_path / "in" / "clip.mp4", read_image(two_faces_path))
    before = sha(clip)
    s = run_op(get_op("blur"), [tmp_path / "in"], tmp_path / "out", progress=False)
    assert (s.processed, s.failed) == (1, 0)
    out = tmp_path / "out" / "clip.mp4"
    assert sha(clip) == before  # the input is untouched
    fi, fo = frames_of(clip), frames_of(out)
    assert len(fo) == len(fi) == 10 and fo[0].shape == fi[0].shape
    assert streams_of(out) == ["audio", "video"]
    assert read_video_metadata(out)["facegan_synthetic"] == "false"
    rows = json.loads((tmp_path / "out" / "report.json").read_text())["faces"]
    assert len(rows) == 2 and all(r["frames"] == 10 and r["status"] == "blurred" for r in rows)
    for r in rows:  # each face's region is blurred in every frame, not only where it was detected
        x0, y0, x1, y1 = (int(v) for v in r["box"])
        cx, cy = (x0 + x1) // 2, (y0 + y1) // 2
        for a, b in zip(fi, fo):
            pa, pb = (x[cy - 10:cy + 10, cx - 10:cx + 10].astype(float).mean(-1) for x in (a, b))
            detail = [np.abs(np.diff(p, axis=0)).mean() + np.abs(np.diff(p, axis=1)).mean() for p in (pa, pb)]
            assert detail[1] < 0.6 * detail[0]
    from facegan.review import review_sheets

    sheets = review_sheets(tmp_path / "out")  # the review pages read each track's keyframe
    assert sheets["faces"] == 2 and len(sheets["pages"]) == 1
    # resume: done videos are skipped
    again = run_op(get_op("blur"), [tmp_path / "in"], tmp_path / "out", progress=False)
    assert (again.processed, again.skipped) == (0, 1)


def test_video_without_faces_and_broken_video(tmp_path):
    blank = make_clip(tmp_path / "blank.mp4", np.full((120, 160, 3), 90, np.uint8), audio=False)
    with pytest.raises(NoFaceError):
        from facegan.video import process_video

        process_video(get_op("blur"), {"strength": 1.0}, blank, tmp_path / "o.mp4", "o.mp4")
    assert not (tmp_path / "o.mp4").exists() and not list(tmp_path.glob(".*partial*"))
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(blank.read_bytes()[:300])
    s = run_op(get_op("blur"), [cut], tmp_path / "out", progress=False)
    assert s.failed == 1 and s.errors[0][1] in ("corrupt_image", "no_face")
    assert not (tmp_path / "out" / "cut.mp4").exists()


def test_video_limits(tmp_path, portrait_path):
    from facegan.errors import ImageTooLargeError

    clip = make_clip(tmp_path / "c.mp4", read_image(portrait_path), audio=False)
    info = probe_video(clip)
    assert info.frames == 10 and float(info.fps) == 8.0 and not info.has_audio
    with pytest.raises(ImageTooLargeError):
        probe_video(clip, max_pixels=1000)
    with pytest.raises(ImageTooLargeError):
        probe_video(clip, max_frames=5)


def test_a_pinned_decision_reproduces_the_photo(portrait_rgb):
    from facegan.faces.detect import detect_faces

    op = get_op("anonymize")
    if not op.available():
        pytest.skip("translator not installed")
    first = op(portrait_rgb, seed=5)
    pin = first.info["pins"][0]
    assert pin["target"] == first.faces[0]["target"] and pin["strength"] == first.faces[0]["strength"]
    f = detect_faces(portrait_rgb, "centerface")[0]
    f.extra["pin"] = pin
    again = op.run(portrait_rgb, **op.parse_options({"seed": 99}), faces=[f], verify=False)
    assert again.faces[0]["pinned"] and again.faces[0]["status"] == "changed"
    assert np.abs(again.image.astype(int) - first.image).max() <= 1  # the same face, not a new draw


def test_anonymize_video_one_look_per_face(tmp_path, portrait_path):
    op = get_op("anonymize")
    if not op.available():
        pytest.skip("translator not installed")
    clip = make_clip(tmp_path / "c.mp4", read_image(portrait_path))
    s = run_op(op, [clip], tmp_path / "out", {"seed": 1}, progress=False)
    assert (s.processed, s.failed) == (1, 0)
    out = tmp_path / "out" / "c.mp4"
    assert read_video_metadata(out)["facegan_synthetic"] == "true"
    assert streams_of(out) == ["audio", "video"]
    (row,) = json.loads((tmp_path / "out" / "report.json").read_text())["faces"]
    assert row["status"] == "changed" and row["frames"] == 10 and row["target"] in ("male", "female")
    assert row["face_mask"] == "ellipse"  # the op's own setting, in the track's row
    assert row["check"] in ("pass", "exhausted") and len(row["checked_frames"]) == 4
    assert row["verified_frames"][0] == 0 and isinstance(row["same_person"], bool)
    assert 0.0 <= row["same_person_share"] <= 1.0 and "identity_similarity" in row
    fi, fo = frames_of(clip), frames_of(out)
    x0, y0, x1, y1 = (int(v) for v in row["box"])
    change = [np.abs(b[y0:y1, x0:x1].astype(float) - a[y0:y1, x0:x1]).mean() for a, b in zip(fi, fo)]
    assert min(change) > 4.0  # every frame's face is changed ...
    assert max(change) < 2.0 * min(change)  # ... by about as much (one pinned look, not a new one a frame)


def test_a_rotated_phone_video_is_read_upright(tmp_path):
    import struct

    from facegan.io.video import iter_frames

    img = np.zeros((48, 64, 3), np.uint8)
    img[:10, :20] = 255  # white in the stored frame's top-left corner
    clip = one_frame_video(tmp_path / "flat.mp4", img, "libx264", "yuv420p")
    data = bytearray(clip.read_bytes())  # the track header's display matrix as a phone writes rotate=90
    i = data.find(b"tkhd")
    assert data[i + 4] == 0  # version 0 header
    off = i + 4 + 4 + 20 + 8 + 8
    assert struct.unpack(">9i", data[off:off + 36])[0] == 65536  # the identity matrix is where we write
    data[off:off + 36] = struct.pack(">9i", 0, 65536, 0, -65536, 0, 0, 0, 0, 0x40000000)
    rotated = tmp_path / "rot90.mp4"
    rotated.write_bytes(bytes(data))
    info = probe_video(rotated)
    assert (info.width, info.height, info.rotation) == (48, 64, 90)
    (frame,) = list(iter_frames(info))
    assert frame.shape == (64, 48, 3)
    assert frame[:20, -10:].mean() > 200 and frame[:20, :10].mean() < 50  # turned clockwise: now top-right


def test_cli_pixelate_video_and_refused_by_photo_readers(tmp_path, portrait_path):
    from click.testing import CliRunner

    from facegan.cli import main
    from facegan.errors import UnsupportedFormatError

    clip = make_clip(tmp_path / "c.mov", read_image(portrait_path), n=4)
    r = CliRunner().invoke(main, ["pixelate", str(clip), "-o", str(tmp_path / "out"), "-q"])
    assert r.exit_code == 0, r.output
    summary = json.loads(r.output.strip().splitlines()[-1])
    assert (summary["processed"], summary["faces"]) == (1, 1)
    assert len(frames_of(tmp_path / "out" / "c.mp4")) == 4  # MOV in, MP4 out
    with pytest.raises(UnsupportedFormatError, match="take videos"):  # the photo path says where videos go
        read_image(tmp_path / "out" / "c.mp4")


def test_odd_sized_lossless_mkv_in_even_mp4_out(tmp_path, portrait_path):
    rgb = np.ascontiguousarray(read_image(portrait_path)[:225, :221])
    src = one_frame_video(tmp_path / "odd.mkv", rgb, "ffv1", "yuv444p", rate=10)
    s = run_op(get_op("blur"), [src], tmp_path / "out", progress=False)
    assert (s.processed, s.failed) == (1, 0)
    (frame,) = frames_of(tmp_path / "out" / "odd.mp4")
    assert frame.shape == (226, 222, 3)  # H.264 (yuv420p) needs even sizes: one edge row / column added
    assert np.abs(frame[:225, :221].astype(int) - rgb).mean() < 20  # the picture is where it was



def test_a_failing_pin_climbs_as_a_photo_would():
    from facegan.ops.swap_gender import RESHAPE_DRAWS, escalate_pin, transform_genders  # noqa: F401
    from facegan.ops.translator_model import translator_available

    if not translator_available():
        pytest.skip("translator not installed")
    state = np.random.default_rng(3).bit_generator.state
    pin = {"target": "male", "strength": 1.0, "ksame": 0.625, "neighbours": list(range(12)), "reshape": 0.08,
           "reshape_state": state}
    opts = {"ksame": 1.25, "reshape": 0.08}
    steps = []
    while pin is not None:
        steps.append((pin["strength"], pin["ksame"], round(pin["reshape"], 3), pin.get("draws", 1)))
        pin = escalate_pin(pin, "anonymize", opts, gender=False, identity=True)
    # k-Same to its full factor, then the other reshape draws (larger at each level), then a stronger change
    assert steps[0] == (1.0, 0.625, 0.08, 1) and steps[1] == (1.0, 1.25, 0.08, 1)
    assert [s[3] for s in steps[1:1 + RESHAPE_DRAWS]] == list(range(1, RESHAPE_DRAWS + 1))
    assert steps[1 + RESHAPE_DRAWS][0] > 1.0 and steps[-1][0] == max(s[0] for s in steps)
    assert steps[2][2] > 0.08  # the redraws grow
    # a gender failure goes straight to the next strength; nothing past the ladder's top
    assert escalate_pin({**pin_top(steps), "reshape_state": state}, "anonymize", opts, True, False) is None
    g = escalate_pin({"target": "male", "strength": 1.0, "ksame": 0.625, "neighbours": [0]}, "anonymize", opts,
                     gender=True, identity=False)
    assert g["strength"] > 1.0 and g["ksame"] == 0.625


def pin_top(steps):
    s, k, r, _ = steps[-1]
    return {"target": "male", "strength": s, "ksame": k, "reshape": r}


def test_a_face_that_comes_back_keeps_its_look(tmp_path, fixtures_dir):
    """One person (happy.jpg, then sad.jpg: the same woman) in two shots with a long gap between them, then
    someone else: three tracks (the gap is longer than the tracker bridges), two people. The returning
    face gets the first shot's decision (one look); the other person gets a decision of her own."""
    import cv2

    op = get_op("anonymize")
    if not op.available():
        pytest.skip("translator not installed")
    imgs = {n: cv2.resize(read_image(fixtures_dir / n), (256, 256), interpolation=cv2.INTER_AREA)
            for n in ("happy.jpg", "sad.jpg", "art_18.jpg")}
    grey = np.full((256, 256, 3), 128, np.uint8)
    seq = [imgs["happy.jpg"]] * 4 + [grey] * 16 + [imgs["sad.jpg"]] * 4 + [grey] * 16 + [imgs["art_18.jpg"]] * 4
    clip = _clip_of(tmp_path / "shots.mp4", seq, fps=8)
    s = run_op(op, [clip], tmp_path / "out", {"seed": 1}, progress=False)
    assert (s.processed, s.failed) == (1, 0)
    rows = json.loads((tmp_path / "out" / "report.json").read_text())["faces"]
    assert [(r["first_frame"], r["last_frame"]) for r in rows] == [(0, 3), (20, 23), (40, 43)]
    assert [r["person"] for r in rows] == [rows[0]["track"], rows[0]["track"], rows[2]["track"]]
    assert rows[2]["person"] != rows[0]["person"]
    for key in ("target", "strength", "ksame"):  # the returning face: the first shot's decision
        assert rows[1][key] == rows[0][key]
    assert rows[1]["checked_frames"] == rows[0]["checked_frames"]  # checked together, on both shots' frames
    assert {1, 21} <= set(rows[0]["checked_frames"])


def test_anonymize_video_of_a_face_turned_sideways(tmp_path, portrait_path):
    """A camera turned without a rotation tag (or someone lying down): the face is read and changed upright.
    Before session 22 this face was read as a man (p_female 0.32), pushed towards female up to the strongest
    try and left matched by both identity models (similarity 0.98)."""
    import facegan.video as V

    op = get_op("anonymize")
    if not op.available():
        pytest.skip("translator not installed")
    rgb = np.ascontiguousarray(np.rot90(read_image(portrait_path)))
    make_clip(tmp_path / "t.mp4", rgb, n=6)
    (track,), _ = V.track_video(probe_video(tmp_path / "t.mp4"))
    # the probe on the first frame found the face rolled: every frame searched turned too
    assert all(abs(f.extra.get("roll", 0)) > 60 for f in track.faces.values() if not f.extra.get("filled"))
    s = run_op(op, [tmp_path / "t.mp4"], tmp_path / "out", {"seed": 1}, progress=False)
    assert (s.processed, s.failed) == (1, 0)
    (row,) = json.loads((tmp_path / "out" / "report.json").read_text())["faces"]
    assert row["gender_before"] == "female" and row["p_female_before"] > 0.7 and row["target"] == "male"
    assert row["status"] == "changed" and row["reads_as_target"] is True
    assert row["same_person"] is False and row["identity_similarity"] < 0.9


@pytest.mark.parametrize("kept", [True, False])
def test_a_face_turned_sideways_that_appears_between_probes_is_found_turned_from_its_first_frame(tmp_path, portrait_path,
                                                                                                  monkeypatch, kept):
    """Before session 23 a rolled face was searched turned only from the probe frame that found it on (probes
    every 2 s): the frames before kept the upright detector's reading, and a face rolled for under 2 s between
    probes was never switched. Now probes come every 0.5 s and the frames since the last probe are searched
    again (kept in memory, or decoded again when they would not fit: ``kept`` False)."""
    import cv2

    import facegan.video as V

    if not kept:
        monkeypatch.setattr(V, "BACKFILL_BYTES", 0)
    rgb = np.ascontiguousarray(np.rot90(read_image(portrait_path), 2))  # upside down: the upright detector's
    h, w = rgb.shape[:2]  # roll reads 43-106 degrees off there (the turned detector's: -178)
    small = cv2.resize(rgb, (w // 4 * 2, h // 4 * 2), interpolation=cv2.INTER_AREA)
    blank = np.full_like(small, 128)
    # 10 fps: probes at frames 0, 5, 10; the face from frame 3 to 9
    clip = _clip_of(tmp_path / "late.mp4", [blank] * 3 + [small] * 7 + [blank] * 2)
    tracks, n = V.track_video(probe_video(clip))
    assert n == 12 and len(tracks) == 1
    seen = {t: f for t, f in tracks[0].faces.items() if not f.extra.get("filled")}
    assert min(seen) == 3 and max(seen) == 9
    assert all(abs(f.extra.get("roll", 0)) > 170 for f in seen.values()), {t: f.extra.get("roll") for t, f in seen.items()}
