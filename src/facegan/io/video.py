"""Video input/output (PyAV, which bundles FFmpeg): frames in, H.264 MP4 out with the source's audio.

- :func:`probe_video` checks a file before any work is done: it opens as a video, holds a video
  stream, frames within the pixel limit (the same ``max_pixels`` as photos) and no more than
  ``MAX_FRAMES`` frames; typed errors (facegan.errors) for everything else.
- :func:`iter_frames` yields RGB uint8 frames (H, W, 3), turned upright when the stream says it is
  rotated (phone videos).
- :class:`VideoWriter` writes H.264 (yuv420p, CRF 18) at the source's frame rate, copies the source's
  audio stream unchanged, and tags the file as synthetic (container metadata, as photos are tagged):
  ``facegan_synthetic``, ``facegan_operation`` and a ``comment``. :func:`read_video_metadata` reads them.
  Written to a hidden temporary file first and renamed when complete, so an interrupted job leaves no
  half video under the output's name (and a resumed job redoes it).
"""
from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from ..errors import CorruptImageError, EmptyFileError, ImageTooLargeError, InputNotFoundError, OutputExistsError

VIDEO_EXTENSIONS: tuple[str, ...] = (".mp4", ".mov", ".m4v", ".mkv", ".webm", ".avi")
MAX_FRAMES = 108_000  # one hour at 30 fps; longer videos are refused before any work (split them first)
CRF = 18  # x264 quality: visually near-lossless for face edits


def is_video_path(path: str | os.PathLike) -> bool:
    return Path(path).suffix.lower() in VIDEO_EXTENSIONS


def iter_videos(root: str | os.PathLike) -> list[Path]:
    """The video files under a folder (by extension), recursively, sorted, hidden ones skipped."""
    root = Path(root)
    found = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        found += [Path(folder, f) for f in files if not f.startswith(".") and is_video_path(f)]
    return sorted(found, key=lambda p: p.relative_to(root).as_posix())


def _av():
    try:
        import av
    except ImportError as e:  # a dependency of the package; only a broken install lacks it
        from ..errors import ModelError

        raise ModelError("video needs PyAV: pip install av") from e
    return av


@dataclass
class VideoInfo:
    path: Path
    width: int  # as displayed (after rotation)
    height: int
    fps: Fraction
    frames: int  # counted by the container (0 when it does not say; then estimated from the duration)
    rotation: int  # degrees the frames are turned to stand upright
    has_audio: bool
    duration_s: float


def probe_video(path: str | os.PathLike, max_pixels: int | None = None, max_frames: int | None = None) -> VideoInfo:
    """A video's size, rate and length, checked against the limits (``max_pixels`` None: the photos' limit)."""
    from .read import default_max_pixels

    av = _av()
    path = Path(path)
    if not path.exists():
        raise InputNotFoundError(f"input not found: {path}")
    if path.stat().st_size == 0:
        raise EmptyFileError(f"{path}: the file is empty")
    try:
        c = av.open(str(path))
    except (av.error.FFmpegError, UnicodeDecodeError) as e:
        raise CorruptImageError(f"{path}: not a readable video ({e.__class__.__name__})") from None
    try:
        if not c.streams.video:
            raise CorruptImageError(f"{path}: holds no video stream")
        s = c.streams.video[0]
        w, h = int(s.codec_context.width or 0), int(s.codec_context.height or 0)
        if w <= 0 or h <= 0:
            raise CorruptImageError(f"{path}: the video stream has no frame size")
        fps = Fraction(s.average_rate) if s.average_rate else (Fraction(s.guessed_rate) if s.guessed_rate else Fraction(25))
        duration = float(c.duration / 1_000_000) if c.duration else (
            float(s.duration * s.time_base) if s.duration and s.time_base else 0.0)
        frames = int(s.frames or 0) or int(round(duration * float(fps)))
        rot = _rotation(s)
        if rot == 0:  # newer FFmpeg gives the display matrix on the frames, not as a stream tag
            try:
                for fr in c.decode(s):
                    rot = _frame_rotation(fr)
                    break
            except av.error.FFmpegError as e:
                raise CorruptImageError(f"{path}: the video's first frame cannot be decoded ({e.__class__.__name__})") from None
        limit = default_max_pixels() if max_pixels is None else int(max_pixels)
        if w * h > limit:
            raise ImageTooLargeError(f"{path}: frames of {w}x{h} = {w * h:,} pixels exceed the limit of {limit:,}")
        mf = MAX_FRAMES if max_frames is None else int(max_frames)
        if frames > mf:
            raise ImageTooLargeError(f"{path}: {frames:,} frames exceed the limit of {mf:,}; split the video first")
        if rot in (90, 270):
            w, h = h, w
        return VideoInfo(path, w, h, fps, frames, rot, bool(c.streams.audio), duration)
    finally:
        c.close()


def _rotation(stream) -> int:
    """Degrees clockwise the stored frames must turn to stand upright (display matrix / rotate tag)."""
    rot = stream.metadata.get("rotate") if stream.metadata else None
    try:
        return int(rot) % 360 if rot is not None else 0
    except ValueError:
        return 0


def _frame_rotation(frame) -> int:
    """Degrees clockwise to stand a decoded frame upright: FFmpeg's display-matrix angle is counter-clockwise
    (a phone's ``rotate=90`` video reads -90)."""
    return (-int(getattr(frame, "rotation", 0) or 0)) % 360


def _upright(a: np.ndarray, rotation: int) -> np.ndarray:
    if rotation == 90:
        return np.ascontiguousarray(np.rot90(a, -1))
    if rotation == 180:
        return np.ascontiguousarray(a[::-1, ::-1])
    if rotation == 270:
        return np.ascontiguousarray(np.rot90(a, 1))
    return a


def iter_frames(info: VideoInfo, max_frames: int | None = None):
    """The video's frames, RGB uint8, upright. A stream that breaks off part way raises CorruptImageError
    (frames already yielded stay yielded)."""
    av = _av()
    limit = MAX_FRAMES if max_frames is None else int(max_frames)
    c = av.open(str(info.path))
    try:
        n = 0
        stream = c.streams.video[0]
        stream.thread_type = "AUTO"
        for fr in c.decode(stream):
            n += 1
            if n > limit:
                raise ImageTooLargeError(f"{info.path}: more than {limit:,} frames; split the video first")
            rot = info.rotation or _frame_rotation(fr)
            yield _upright(fr.to_ndarray(format="rgb24"), rot)
    except av.error.FFmpegError as e:
        raise CorruptImageError(f"{info.path}: the video breaks off or is damaged ({e.__class__.__name__})") from None
    finally:
        c.close()


class VideoWriter:
    """H.264 MP4 at ``fps`` with the audio of ``audio_from`` (if it has any) copied, tagged synthetic or
    not. Use as a context manager; ``write(rgb)`` per frame. Frames of odd width or height are padded by one
    edge row / column (H.264 in yuv420p needs even sizes)."""

    def __init__(self, path: str | os.PathLike, fps: Fraction, *, synthetic: bool, operation: str = "",
                 audio_from: str | os.PathLike | None = None, protect=(), overwrite: bool = False):
        self.path = Path(path)
        for p in protect:
            if self.path.exists() and Path(p).exists() and os.path.samefile(self.path, p):
                raise OutputExistsError(f"{self.path}: refusing to write over the input file {p}")
        if self.path.exists() and not overwrite:
            raise OutputExistsError(f"{self.path}: already exists; refusing to overwrite it")
        self.fps = Fraction(fps).limit_denominator(1001 * 1000)
        self.synthetic, self.operation, self.audio_from = synthetic, operation, audio_from
        self.tmp = self.path.with_name(f".{self.path.stem}.{secrets.token_hex(4)}.partial.mp4")
        self._c = None
        self._v = None
        self._a_in = None
        self.frames = 0

    def __enter__(self):
        return self

    def _open(self, w: int, h: int) -> None:
        av = _av()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._c = av.open(str(self.tmp), "w", format="mp4", options={"movflags": "use_metadata_tags"})
        self._v = self._c.add_stream("libx264", rate=self.fps)
        self._v.width, self._v.height = w + (w % 2), h + (h % 2)
        self._v.pix_fmt = "yuv420p"
        self._v.options = {"crf": str(CRF), "preset": "veryfast"}
        if self.audio_from is not None:
            src = av.open(str(self.audio_from))
            if src.streams.audio:
                self._a_in = src
                self._a = self._c.add_stream_from_template(src.streams.audio[0])
            else:
                src.close()
        from .write import SOFTWARE

        md = self._c.metadata
        md["facegan_synthetic"] = "true" if self.synthetic else "false"
        if self.operation:
            md["facegan_operation"] = self.operation
        md["comment"] = (f"Synthetic: faces changed by {SOFTWARE} {self.operation}".strip() if self.synthetic
                         else f"Processed by {SOFTWARE} {self.operation}; no generated pixels".strip())

    def write(self, rgb: np.ndarray) -> None:
        av = _av()
        h, w = rgb.shape[:2]
        if self._c is None:
            self._open(w, h)
        if h % 2 or w % 2:
            rgb = np.pad(rgb, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
        for pkt in self._v.encode(frame):
            self._c.mux(pkt)
        self.frames += 1

    def close(self) -> Path:
        """Flushes, copies the audio, and puts the file in place."""
        if self._c is None:
            raise CorruptImageError(f"{self.path}: no frames to write")
        for pkt in self._v.encode():
            self._c.mux(pkt)
        if self._a_in is not None:
            for pkt in self._a_in.demux(self._a_in.streams.audio[0]):
                if pkt.dts is None:
                    continue
                pkt.stream = self._a
                self._c.mux(pkt)
            self._a_in.close()
        self._c.close()
        self._c = None
        os.replace(self.tmp, self.path)
        return self.path

    def abort(self) -> None:
        try:
            if self._c is not None:
                self._c.close()
            if self._a_in is not None:
                self._a_in.close()
        except Exception:  # noqa: BLE001 - cleaning up after a failure; the first error is the one reported
            pass
        self._c = None
        self.tmp.unlink(missing_ok=True)

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None:
            self.abort()
        return False


def read_video_metadata(path: str | os.PathLike) -> dict:
    """The container metadata of a video (e.g. ``facegan_synthetic``)."""
    av = _av()
    with av.open(str(path)) as c:
        return dict(c.metadata)
