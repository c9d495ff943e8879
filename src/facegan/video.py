"""Applies an operation to a video: every frame, each face tracked, one decision per face.

Three reads of the file (decoding is cheap next to the ops):

1. **find and track** — every frame's faces (the ops' detector, CenterFace), joined into tracks
   (:mod:`facegan.faces.track`): gaps of a few frames filled, boxes and landmarks smoothed;
2. **decide** — each track's largest view (its keyframe) goes through the op as a photo would, with its
   checks and retries; for ops that pin (``Operation.video == "tracked"``: swap-gender, anonymize) what it
   decided (direction, strength, k-Same neighbours, reshape draw, fallback) is the track's *pin*. The pin
   is then checked on ``CHECK_FRAMES`` more of the track's frames, spread over it (the face region cut
   out, so memory stays small): where one still reads as the source gender or, for anonymize, the
   identity model still matches it, the pin is made stronger as the op would on a photo
   (``Operation.repin``: k-Same to its full factor, then the next strength) and checked again;
3. **write** — every frame: each tracked face gets its pin (no judging, no retries, so a face does not
   flicker between looks), frames without faces are copied; H.264 MP4 with the source's audio, tagged
   synthetic. Every ``VERIFY_EVERY_S`` seconds of a track (and its keyframe) the output frame is checked
   like a photo (gender read-out by both judges, identity similarity by both identity models).

One report row per track: its frames, what was decided on the keyframe, and the checks over the
verified frames (``reads_as_target``: all of them read as the target; ``same_person``: any of them still
matched — the privacy-safe summary; shares and means beside them).
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from .errors import NoFaceError
from .faces.keep import VERIFY_MIN
from .ops.base import Operation, photo_seed

DETECTOR = "centerface-upright"  # the ops' detector without its turned passes (faces/centerface.py), ~50 ms a frame
# less; every PROBE_EVERY_S seconds a frame is also searched with them, and once a face there is rolled more than
# PROBE_ROLL degrees (someone lying down, a camera turned without a rotation tag) that frame, the frames since the
# probe before it (decoded again) and every later frame are too
TURNED_DETECTOR = "centerface-video"  # the ops' detector (turned passes too), no small-face pass unless asked
PROBE_EVERY_S = 0.5  # ~60 ms a probe: about 4 ms a frame at 30 fps
PROBE_ROLL = 45.0
BACKFILL_BYTES = 256 << 20  # the frames since the last probe are kept for that (decoded again when larger)
VERIFY_EVERY_S = 1.0  # seconds between a track's verified frames
CHECK_FRAMES = 4  # frames besides the keyframe a track's decision is checked on before writing
REGION_MARGIN = 0.75  # the cut-out checked: the face box grown by this fraction of its size on each side
TRACK_ROW = ("status", "gender_before", "p_female_before", "age_before", "gender_judge", "source_judge", "target", "model",
             "strength", "strengths_tried", "reshape", "reshape_draws", "ksame", "ksame_bank", "chroma", "eye_chroma",
             "eye_lighten", "keep_tone", "keep_hair", "face_mask", "refine", "refiner", "restore", "restorer", "redraw_large",
             "redraw_size",
             "fallback", "unsure_source", "sigma_px", "cell_px",
             "too_small", "keep_distance")
# a track that starts after another ended (the face left the picture, or a cut) is the same person when dlib's
# descriptors of the two keyframes lie closer than this (dlib's own rule is 0.6; stricter, since a merge
# hands the later track the earlier one's decision, its direction included): it gets the same pin, one look
REID_DISTANCE = 0.5
CHECKS = ("reads_as_target", "resnet_reads_as_target", "same_person", "same_person_2")
MEANS = ("identity_similarity", "identity_similarity_2", "p_female_after", "resnet_p_female_after")


def _bar(total: int, desc: str, progress: bool):
    from tqdm import tqdm

    return tqdm(total=total or None, desc=desc, unit="frame", leave=False, disable=not progress)


def track_video(info, progress: bool = False, max_frames: int | None = None, landmarks68: bool = False):
    """Pass 1: (tracks, frame count). ``landmarks68``: each face's 68 landmarks too (dlib), smoothed with the
    track — what anonymize's reshape warps by, so the warp does not shake with dlib's per-frame noise."""
    from .faces.detect import detect_faces
    from .faces.track import Tracker
    from .io.video import iter_frames

    def found(frame, detector):
        faces = detect_faces(frame, detector)
        if landmarks68:
            from .faces.reshape import landmarks68 as lm68

            for f in faces:
                f.landmarks68 = lm68(frame, f)  # a rolled face's fitted where it is upright
        return faces

    per_frame: list[list] = []
    detector = DETECTOR
    probe_every = max(1, int(round(PROBE_EVERY_S * float(info.fps or 1))))
    since: list = []  # (t, frame) since the last probe, while they fit in BACKFILL_BYTES
    with _bar(info.frames, "find faces", progress) as bar:
        for t, frame in enumerate(iter_frames(info, max_frames)):
            faces = None
            if detector == DETECTOR and t % probe_every == 0:  # a face lying down, a camera turned untagged?
                turned = found(frame, TURNED_DETECTOR)
                if any(abs(f.extra.get("roll", 0.0)) > PROBE_ROLL for f in turned):
                    detector, faces = TURNED_DETECTOR, turned  # from here on, every frame turned too
                    # the frames since the probe before: the rolled face may have been there already
                    kept = len(since) == min(t, probe_every - 1)
                    for u, old in since if kept else _frames(info, t - probe_every + 1, t):
                        per_frame[u] = found(old, TURNED_DETECTOR)
                since = []
            elif detector == DETECTOR and frame.nbytes * (len(since) + 1) <= BACKFILL_BYTES:
                since.append((t, frame))
            per_frame.append(found(frame, detector) if faces is None else faces)
            bar.update(1)
    tracker = Tracker()
    for t, faces in enumerate(per_frame):
        tracker.update(t, faces)
    return tracker.finish(), len(per_frame)


def _frames(info, start: int, stop: int):
    """(t, frame) for frames ``start`` to ``stop`` - 1, decoded again from the start of the video."""
    from .io.video import iter_frames

    frames = iter_frames(info)
    try:
        for t, frame in enumerate(frames):
            if t >= stop:
                break
            if t >= start:
                yield t, frame
    finally:
        frames.close()


def process_video(op: Operation, opts: dict, src: Path, dst: Path, key: str, max_pixels: int | None = None,
                  progress: bool = False, max_frames: int | None = None, keep=None) -> list[dict]:
    """One video through ``op`` into ``dst`` (MP4). Returns one report row per face track (without
    ``file`` / ``output``). Raises NoFaceError when no frame has a face (nothing is written)."""
    from .io.video import VideoWriter, iter_frames, probe_video

    t_start = time.perf_counter()
    info = probe_video(src, max_pixels=max_pixels, max_frames=max_frames)
    tracked = getattr(op, "video", None) == "tracked"
    tracks, n_frames = track_video(info, progress, max_frames, landmarks68=tracked)
    if not tracks:
        raise NoFaceError(f"no face found in any of the video's {n_frames} frames")
    by_frame: dict[int, list] = {}
    for k in tracks:
        for t in k.faces:
            by_frame.setdefault(t, []).append(k)
    keyframes = {k.id: k.keyframe() for k in tracks}
    pins: dict[int, dict | None] = {}
    key_rows: dict[int, dict] = {}
    seed = opts.get("seed")
    synthetic = False
    want: dict[int, list] = {}  # pass 2: decide each track on its keyframe
    cut: dict[int, list] = {}  # frame -> tracks whose face region is kept there for the check
    for k in tracks:
        want.setdefault(keyframes[k.id], []).append(k)
        if tracked and op.repin is not None:
            for t in _check_frames(k, keyframes[k.id]):
                cut.setdefault(t, []).append(k)
    regions: dict[int, list] = {k.id: [] for k in tracks}
    kept: dict[int, float] = {}  # track id -> distance to the nearest --keep-face reference
    person: dict[int, int] = {}  # track id -> the track whose decision it shares (itself, or an earlier one)
    seen: list[tuple] = []  # (track, dlib descriptor of its keyframe face) of the tracks decided so far
    with _bar(n_frames, "decide per face", progress) as bar:
        for t, frame in enumerate(iter_frames(info, max_frames)):
            bar.update(1)
            for k in cut.get(t, ()):
                regions[k.id].append((t, *_region(frame, k.faces[t])))
            for k in want.get(t, ()):
                person[k.id] = k.id
                if keep and min(k.faces[t].width, k.faces[t].height) >= VERIFY_MIN:  # a face to leave alone
                    # (--keep-face / --only-face): decided on its keyframe, never changed; a smaller one always changed
                    d = keep.leaves(_descriptor(frame, k.faces[t]))
                    if d is not None:
                        kept[k.id], pins[k.id], key_rows[k.id] = d, None, keep.row(k.id, k.faces[t], d)
                        continue
                if tracked:
                    desc = _descriptor(frame, k.faces[t])
                    lead = _same_person(k, desc, seen, tracks, person)
                    seen.append((k, desc))
                    if lead is not None and pins.get(lead) is not None:  # seen before: the same decision
                        person[k.id], pins[k.id] = lead, pins[lead]
                        f = _bare(k.faces[t])
                        f.extra["pin"] = pins[k.id]
                        try:
                            key_rows[k.id] = op.run(frame, **opts, faces=[f]).faces[0]
                        except NoFaceError:
                            key_rows[k.id] = {"status": "too small"}
                        continue
                o = dict(opts)
                if seed is not None:
                    o["seed"] = photo_seed(seed, f"{key}#track{k.id}")
                try:
                    res = op.run(frame, **o, faces=[_bare(k.faces[t])])
                except NoFaceError:  # only a face too small for the op
                    pins[k.id], key_rows[k.id] = None, {"status": "too small"}
                    continue
                pins[k.id] = res.info.get("pins", [None])[0] if tracked else None
                key_rows[k.id] = res.faces[0]
                synthetic |= bool(res.synthetic)
            if t >= max(want) and t >= max(cut, default=0):
                break
    escalated: dict[int, dict] = {}
    for lead in tracks:  # each person's pin checked on more of its tracks' frames, made stronger where one fails
        members = [k for k in tracks if person.get(k.id) == lead.id]
        checked = sorted((r for k in members for r in regions[k.id]), key=lambda r: r[0])
        if pins.get(lead.id) is None or not checked:
            continue
        steps, state = 0, None
        while True:
            rows = []
            for t, img, face in checked:
                f = _bare(face)
                f.extra["pin"] = pins[lead.id]
                try:
                    rows.append(op.run(img, **opts, faces=[f], verify=True).faces[0])
                except NoFaceError:
                    continue
            state, nxt = op.repin(pins[lead.id], rows, opts)
            if state != "stronger":
                break
            pins[lead.id], steps = nxt, steps + 1
        for k in members:
            pins[k.id] = pins[lead.id]
            escalated[k.id] = {"checked_frames": [t for t, _, _ in checked], "check": state,
                               "check_stronger_steps": steps}
            regions[k.id] = []
    every = max(1, int(round(VERIFY_EVERY_S * float(info.fps))))
    checks: dict[int, list[dict]] = {k.id: [] for k in tracks}
    frame_rows: dict[int, dict] = {}
    with VideoWriter(dst, info.fps, synthetic=synthetic, operation=op.name, audio_from=src, protect=[src],
                     overwrite=True) as w, _bar(n_frames, "write", progress) as bar:
        for t, frame in enumerate(iter_frames(info, max_frames)):
            ks = [k for k in by_frame.get(t, []) if k.id not in kept]
            if not ks:
                w.write(frame)
                bar.update(1)
                continue
            faces = []
            for k in ks:
                f = _bare(k.faces[t])
                if tracked and pins.get(k.id) is not None:
                    f.extra["pin"] = pins[k.id]
                faces.append(f)
            extra = {}
            if tracked:
                extra["verify"] = any(t == keyframes[k.id] or (t - k.first) % every == 0 for k in ks)
            try:
                res = op.run(frame, **opts, faces=faces, **extra)
            except NoFaceError:  # every face in this frame too small for the op: left as it is
                w.write(frame)
                bar.update(1)
                continue
            w.write(res.image)
            for k, r in zip(ks, res.faces):
                frame_rows.setdefault(k.id, r)  # the first processed frame: the row of non-pinning ops
                if extra.get("verify") and (t == keyframes[k.id] or (t - k.first) % every == 0) and "gender_after" in r:
                    checks[k.id].append({**r, "frame": t})
            bar.update(1)
        w.close()
    rows = []
    for k in tracks:
        base = dict(key_rows.get(k.id) or frame_rows.get(k.id) or {})
        if k.id in escalated and pins.get(k.id):  # what the frames were written with
            base.update({c: pins[k.id][c] for c in ("strength", "ksame", "reshape", "fallback") if c in base or pins[k.id].get(c)})
        row = {"face": k.id, "track": k.id, "person": person.get(k.id, k.id), "frames": len(k.faces),
               "first_frame": k.first, "last_frame": k.last,
               "keyframe": keyframes[k.id], "filled_frames": len(k.faces) - k.detected(),
               "box": base.get("box", [round(float(v), 1) for v in k.faces[keyframes[k.id]].box]),
               **{c: base[c] for c in TRACK_ROW if c in base}}
        if row.get("status") is None:
            row["status"] = "unchanged"
        row.update(escalated.get(k.id, {}))
        cs = checks[k.id]
        if cs:
            row["verified_frames"] = [c["frame"] for c in cs]
            for c in CHECKS:
                vals = [bool(x[c]) for x in cs if c in x]
                if vals:  # the privacy-safe summary: every check passed / any frame still matched
                    row[c] = any(vals) if c.startswith("same_person") else all(vals)
                    row[f"{c}_share"] = round(sum(vals) / len(vals), 4)
            for m in MEANS:
                vals = [float(x[m]) for x in cs if m in x]
                if vals:
                    row[m] = round(float(np.mean(vals)), 4)
            for j in ("identity_judge", "identity_judge_2", "resnet_judge", "gender_after"):
                if j in cs[-1]:
                    row[j] = cs[-1][j]
        rows.append(row)
    secs = round(time.perf_counter() - t_start, 3)
    for r in rows:
        r["video_frames"], r["fps"], r["time_s"] = n_frames, round(float(info.fps), 3), secs
    return rows


def _bare(face):
    """A copy of a tracked face with no per-frame state (the op caches landmarks and pins in ``extra``)."""
    from .faces.types import Face

    return Face(face.box, face.score, None if face.landmarks5 is None else np.array(face.landmarks5),
                None if face.landmarks68 is None else np.array(face.landmarks68), face.detector,
                {k: v for k, v in face.extra.items() if k == "filled"})


def _descriptor(frame: np.ndarray, face) -> np.ndarray:
    """dlib's identity descriptor of a tracked face (its smoothed landmarks; dlib's 5 points found anew)."""
    from .judges.identity import get_identity

    return get_identity().embed(frame, _bare(face))


def _same_person(track, desc: np.ndarray, seen: list, tracks: list, person: dict) -> int | None:
    """The person (lead track id) an earlier-decided track whose keyframe descriptor lies within
    ``REID_DISTANCE`` of ``desc`` belongs to — the closest such, and only if none of that person's tracks
    shares a frame with ``track`` (two faces in one frame are two people) — else None."""
    best, best_d = None, REID_DISTANCE
    for k, d in seen:
        dist = float(np.linalg.norm(np.asarray(d, np.float64) - np.asarray(desc, np.float64)))
        if dist >= best_d:
            continue
        lead = person[k.id]
        members = [m for m in tracks if person.get(m.id) == lead and m.id != track.id]
        if any(m.first <= track.last and track.first <= m.last for m in members):
            continue
        best, best_d = lead, dist
    return best


def _check_frames(track, keyframe: int) -> list[int]:
    """Up to ``CHECK_FRAMES`` detected frames of the track besides its keyframe, spread evenly over it."""
    det = [t for t, f in sorted(track.faces.items()) if not f.extra.get("filled") and t != keyframe]
    if len(det) <= CHECK_FRAMES:
        return det
    return [det[int(round(i * (len(det) - 1) / (CHECK_FRAMES - 1)))] for i in range(CHECK_FRAMES)] if CHECK_FRAMES > 1 \
        else [det[len(det) // 2]]


def _region(frame: np.ndarray, face) -> tuple:
    """(a copy of the frame cut to the face box grown by ``REGION_MARGIN``, the face in its coordinates)."""
    from .faces.types import Face

    h, w = frame.shape[:2]
    x0, y0, x1, y1 = face.box
    mx, my = (x1 - x0) * REGION_MARGIN, (y1 - y0) * REGION_MARGIN
    X0, Y0 = max(0, int(x0 - mx)), max(0, int(y0 - my))
    X1, Y1 = min(w, int(np.ceil(x1 + mx))), min(h, int(np.ceil(y1 + my)))
    off = np.array([X0, Y0], np.float64)
    lm = None if face.landmarks5 is None else np.asarray(face.landmarks5, np.float64) - off
    lm68 = None if face.landmarks68 is None else np.asarray(face.landmarks68, np.float64) - off
    box = (x0 - X0, y0 - Y0, x1 - X0, y1 - Y0)
    return frame[Y0:Y1, X0:X1].copy(), Face(box, face.score, lm, lm68, face.detector, {})
