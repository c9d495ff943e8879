"""Training data: image sources, optional face alignment with an on-disk cache, and datasets for
unpaired (A, B), paired (A -> B) and face-swap (two identities, warped inputs) training.

A *source spec* (``data.a``, ``data.b``, ``data.source``, ``data.ab`` in a config) is either a path
(folder of images, a video file, or an ``.npz`` crop cache with a ``crops`` array) or a dict:

- ``{folder: DIR}``                                   every image under DIR (recursive, sorted)
- ``{folder: DIR, regex: '^(\\d+)_(\\d)_', group: 2, equals: '1'}``   file-name regex filter
- ``{utkface: DIR, gender: 0, min_age: 18, max_age: 60, race: 0, split: train}``  UTKFace labels,
  leak-free split by the DATETIME stem (``split``: train | test | all)
- ``{csv: FILE, root: DIR, file_column: file, where: {gender: female}}``  labels from a CSV
- ``{video: FILE, every: 1, max_frames: 300}``          frames of a video (use with ``align``)
- any of them with ``limit: N`` (N images after a seeded shuffle) and ``align: true|false``
  (per-source override of ``data.align``).

Sampling is a pure function of (seed, global sample counter): :class:`StreamBatchSampler` maps the
k-th sample of the run to an index of each domain (a fresh seeded permutation every epoch) and to
an augmentation seed, and shards k across DDP ranks. A resumed run restarts the stream at the
exact sample it stopped at, with any ``num_workers``.
"""
from __future__ import annotations

import csv
import hashlib
import json
import random
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from ..errors import ConfigError, InputNotFoundError
from .augment import Augment, degrade, random_transform, random_warp, resize_square

IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}
VIDEO_EXTS = {".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v"}


# ----------------------------------------------------------------------------- reading
def list_images(folder: str | Path) -> list[Path]:
    folder = Path(folder)
    if not folder.is_dir():
        raise InputNotFoundError(f"image folder not found: {folder}")
    try:
        from ..io import iter_images  # the project's reader when present (same extension rules)

        return list(iter_images(folder))
    except ImportError:
        return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_EXTS and p.is_file())


def read_rgb(path: str | Path) -> np.ndarray:
    try:
        from ..io import read_image

        return read_image(path)
    except ImportError:
        from PIL import Image, ImageOps

        with Image.open(path) as im:
            return np.asarray(ImageOps.exif_transpose(im).convert("RGB"))


def read_video_frames(path: str | Path, every: int = 1, max_frames: int | None = None) -> list[np.ndarray]:
    import cv2

    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise InputNotFoundError(f"cannot open video: {path}")
    frames, i = [], 0
    while True:
        ok, f = cap.read()
        if not ok:
            break
        if i % max(every, 1) == 0:
            frames.append(cv2.cvtColor(f, cv2.COLOR_BGR2RGB))
            if max_frames and len(frames) >= max_frames:
                break
        i += 1
    cap.release()
    if not frames:
        raise InputNotFoundError(f"no frames decoded from video: {path}")
    return frames


def to_tensor(img: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1).float().div(127.5).sub(1.0)


def to_uint8(x: torch.Tensor) -> np.ndarray:
    return ((x.detach().float().clamp(-1, 1) + 1) * 127.5 + 0.5).byte().permute(0, 2, 3, 1).cpu().numpy()


# ----------------------------------------------------------------------------- sources
@dataclass
class Source:
    """N images, each returned as uint8 RGB ``load_size`` x ``load_size`` by :meth:`get`."""

    names: list[str]
    load_size: int
    paths: list[Path] | None = None
    arrays: np.ndarray | None = None
    info: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.names)

    def get(self, i: int) -> np.ndarray:
        if self.arrays is not None:
            return self.arrays[i]
        return resize_square(read_rgb(self.paths[i]), self.load_size)

    def preload(self) -> "Source":
        if self.arrays is None and self.paths is not None:
            self.arrays = np.stack([self.get(i) for i in range(len(self))]) if len(self) else \
                np.zeros((0, self.load_size, self.load_size, 3), np.uint8)
        return self


@dataclass
class DataOptions:
    load_size: int
    seed: int = 0
    align: bool = False
    template: str | None = None
    detector: str = "dlib-hog"
    cache_dir: str = "cache/aligned"
    on_miss: str = "drop"  # drop | resize
    preload: str | bool = "auto"
    progress: bool = True


def _spec_dict(spec) -> dict:
    if spec is None:
        raise ConfigError("missing data source")
    if isinstance(spec, (str, Path)):
        p = Path(spec)
        if p.suffix.lower() in VIDEO_EXTS:
            return {"video": str(p)}
        if p.suffix.lower() == ".npz":
            return {"npz": str(p)}
        return {"folder": str(p)}
    if not isinstance(spec, dict):
        raise ConfigError(f"bad data source spec: {spec!r}")
    return dict(spec)


_SPEC_KEYS = {"folder", "path", "regex", "group", "equals", "utkface", "gender", "min_age", "max_age", "race",
              "split", "csv", "root", "file_column", "where", "video", "every", "max_frames", "limit", "align",
              "npz", "name"}


def _filter_csv(d: dict) -> list[Path]:
    path = Path(d["csv"])
    if not path.exists():
        raise InputNotFoundError(f"label CSV not found: {path}")
    root = Path(d.get("root") or path.parent)
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        return []
    col = d.get("file_column") or next(iter(rows[0]))
    where = d.get("where") or {}
    for k in where:
        if k not in rows[0]:
            raise ConfigError(f"CSV {path} has no column {k!r}; columns: {', '.join(rows[0])}")
    out = []
    for r in rows:
        ok = all(str(r[k]) in ([str(x) for x in v] if isinstance(v, list) else [str(v)]) for k, v in where.items())
        if ok:
            out.append(root / r[col])
    return out


def _select(d: dict) -> tuple[list[Path] | None, list[np.ndarray] | None, list[str], dict]:
    """Resolves a spec to file paths (or decoded frames) before alignment/limit."""
    info: dict = {}
    if "utkface" in d:
        from .utkface import scan

        labels = scan(d["utkface"], int(d.get("min_age", 0)), int(d.get("max_age", 200)))
        if not labels and not Path(d["utkface"]).is_dir():
            raise InputNotFoundError(f"UTKFace folder not found: {d['utkface']}")
        split = d.get("split", "train")
        if split not in ("train", "test", "all"):
            raise ConfigError(f"utkface split must be train|test|all, not {split!r}")

        def keep(lab):
            if split != "all" and lab.split != split:
                return False
            for key in ("gender", "race"):
                if d.get(key) is not None:
                    want = d[key] if isinstance(d[key], list) else [d[key]]
                    if getattr(lab, key) not in [int(w) for w in want]:
                        return False
            return True

        paths = [lab.path for lab in labels if keep(lab)]
        info["utkface"] = {"split": split}
        return paths, None, [p.name for p in paths], info
    if "csv" in d:
        paths = _filter_csv(d)
        return paths, None, [p.name for p in paths], info
    if "video" in d:
        frames = read_video_frames(d["video"], int(d.get("every", 1)), d.get("max_frames"))
        names = [f"{Path(d['video']).stem}_{i:05d}" for i in range(len(frames))]
        return None, frames, names, info
    if "npz" in d:
        z = np.load(d["npz"], allow_pickle=False)
        crops = z["crops"]
        names = [str(n) for n in z["name"]] if "name" in z.files else [f"{i:06d}" for i in range(len(crops))]
        return None, list(crops), names, info
    folder = d.get("folder") or d.get("path")
    if folder is None:
        raise ConfigError(f"data source needs one of folder/utkface/csv/video/npz: {d!r}")
    paths = list_images(folder)
    if "regex" in d:
        rx = re.compile(d["regex"])
        grp = d.get("group", 0)
        want = d.get("equals")
        want = None if want is None else [str(w) for w in (want if isinstance(want, list) else [want])]
        sel = []
        for p in paths:
            m = rx.search(p.name)
            if m and (want is None or str(m.group(grp)) in want):
                sel.append(p)
        paths = sel
    return paths, None, [p.name for p in paths], info


def _cache_key(d: dict, paths, names, opts: DataOptions) -> str:
    h = hashlib.sha1()
    h.update(json.dumps({"spec": {k: d[k] for k in sorted(d) if k != "name"}, "size": opts.load_size,
                         "template": opts.template, "detector": opts.detector, "on_miss": opts.on_miss},
                        sort_keys=True, default=str).encode())
    for i, n in enumerate(names):
        h.update(n.encode())
        if paths is not None:
            st = Path(paths[i]).stat()
            h.update(f"{st.st_size}:{int(st.st_mtime)}".encode())
    if "video" in d:
        st = Path(d["video"]).stat()
        h.update(f"{st.st_size}:{int(st.st_mtime)}".encode())
    return h.hexdigest()[:16]


def align_images(images, names: list[str], opts: DataOptions) -> tuple[np.ndarray, list[str], np.ndarray]:
    """Detects the largest face of each image and aligns it to ``opts.template``.

    ``images`` yields uint8 RGB arrays. Returns (crops, kept names, detected flags)."""
    from tqdm import tqdm

    from ..faces import align_face
    from ..faces.detect import detect_faces

    crops, kept, det = [], [], []
    for img, name in tqdm(zip(images, names), total=len(names), desc="align", disable=not opts.progress,
                          leave=False):
        faces = detect_faces(img, opts.detector)
        if faces:
            face = max(faces, key=lambda f: f.width * f.height)
            crops.append(align_face(img, face, opts.template or "utkface", opts.load_size).crop)
            kept.append(name)
            det.append(True)
        elif opts.on_miss == "resize":
            crops.append(resize_square(img, opts.load_size))
            kept.append(name)
            det.append(False)
    arr = np.stack(crops) if crops else np.zeros((0, opts.load_size, opts.load_size, 3), np.uint8)
    return arr, kept, np.array(det, bool)


def build_source(spec, opts: DataOptions, *, split: str | None = None) -> Source:
    """Resolves a spec, applies limit and optional alignment (cached under ``opts.cache_dir``)."""
    d = _spec_dict(spec)
    unknown = set(d) - _SPEC_KEYS
    if unknown:
        raise ConfigError(f"unknown keys in data source spec: {', '.join(sorted(unknown))}")
    if split is not None and "utkface" in d:
        d["split"] = split
    paths, frames, names, info = _select(d)
    if d.get("limit"):
        order = list(range(len(names)))
        random.Random(opts.seed).shuffle(order)
        order = sorted(order[: int(d["limit"])])
        names = [names[i] for i in order]
        paths = None if paths is None else [paths[i] for i in order]
        frames = None if frames is None else [frames[i] for i in order]
    if not names:
        raise ConfigError(f"data source selects no images: {d!r}")
    align = d.get("align", opts.align)
    if align:
        cache = Path(opts.cache_dir) / f"aligned_{_cache_key(d, paths, names, opts)}.npz"
        if cache.exists():
            z = np.load(cache, allow_pickle=False)
            crops, names, det = z["crops"], [str(n) for n in z["name"]], z["detected"]
        else:
            imgs = frames if frames is not None else (read_rgb(p) for p in paths)
            crops, names, det = align_images(imgs, names, opts)
            cache.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache.with_name(cache.stem + ".tmp.npz")
            np.savez(tmp, crops=crops, name=np.array(names), detected=det)
            tmp.replace(cache)
        if not len(names):
            raise ConfigError(f"no face found in any image of {d!r}")
        info.update(aligned=True, detected=int(np.sum(det)), cache=str(cache))
        return Source(names, opts.load_size, arrays=crops, info=info)
    if frames is not None:
        arr = np.stack([resize_square(f, opts.load_size) for f in frames])
        return Source(names, opts.load_size, arrays=arr, info=info)
    src = Source(names, opts.load_size, paths=paths, info=info)
    if opts.preload is True or (opts.preload == "auto" and len(src) * opts.load_size ** 2 * 3 < 2e9):
        src.preload()
    return src


# ----------------------------------------------------------------------------- sampling
class StreamBatchSampler:
    """Infinite batch sampler. The k-th sample of the run (k = (step * batch + j) * world + rank)
    gets, for each domain d of size n_d, index ``perm(seed, d, k // n_d)[k % n_d]`` and augmentation
    seed k. Yields lists of keys ``(i_0, ..., i_{D-1}, k)``."""

    def __init__(self, sizes: list[int], batch: int, seed: int = 0, start_step: int = 0, rank: int = 0,
                 world: int = 1):
        self.sizes, self.batch, self.seed = list(sizes), batch, seed
        self.start_step, self.rank, self.world = start_step, rank, world
        self._perms: dict = {}

    def _perm(self, d: int, epoch: int) -> torch.Tensor:
        key = (d, epoch)
        if key not in self._perms:
            if len(self._perms) > 8:
                self._perms.clear()
            g = torch.Generator().manual_seed((self.seed * 1_000_003 + d * 7919 + epoch) % (2 ** 63))
            self._perms[key] = torch.randperm(self.sizes[d], generator=g)
        return self._perms[key]

    def keys(self, step: int) -> list[tuple]:
        out = []
        for j in range(self.batch):
            k = (step * self.batch + j) * self.world + self.rank
            idx = []
            for d, n in enumerate(self.sizes):
                epoch, pos = divmod(k, n)
                idx.append(int(self._perm(d, epoch)[pos]))
            out.append((*idx, k))
        return out

    def __iter__(self):
        step = self.start_step
        while True:
            yield self.keys(step)
            step += 1


def _rng(seed: int, k: int) -> np.random.Generator:
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, int(k)])


# ----------------------------------------------------------------------------- datasets
class UnpairedDataset(Dataset):
    kind = "unpaired"

    def __init__(self, a: Source, b: Source, aug: Augment, seed: int = 0):
        self.a, self.b, self.aug, self.seed = a, b, aug, seed

    @property
    def sizes(self):
        return [len(self.a), len(self.b)]

    def __len__(self):
        return max(self.sizes)

    def __getitem__(self, key):
        ia, ib, k = key
        rng = _rng(self.seed, k)
        return {"A": to_tensor(self.aug(self.a.get(ia), rng)), "B": to_tensor(self.aug(self.b.get(ib), rng))}


class PairedDataset(Dataset):
    """Pairs from two sources with equal names (``a``/``b``), from side-by-side images (``ab``), or
    made from one source by a degradation (``source`` + ``degrade``): A is the input, B the target."""

    kind = "paired"

    def __init__(self, aug: Augment, seed: int = 0, a: Source | None = None, b: Source | None = None,
                 ab: Source | None = None, source: Source | None = None, degrade_kind: str | None = None,
                 reverse: bool = False):
        self.aug, self.seed, self.reverse = aug, seed, reverse
        self.ab, self.source, self.degrade_kind = ab, source, degrade_kind
        if a is not None and b is not None:
            bi = {n: i for i, n in enumerate(b.names)}
            self.pairs = [(i, bi[n]) for i, n in enumerate(a.names) if n in bi]
            if not self.pairs:
                raise ConfigError("paired folders share no file names")
            self.a, self.b = a, b
        elif ab is None and source is None:
            raise ConfigError("paired data needs data.a + data.b, data.ab, or data.source + data.degrade")
        n = len(self.pairs) if a is not None and b is not None else len(ab if ab is not None else source)
        self.n = n

    @property
    def sizes(self):
        return [self.n]

    def __len__(self):
        return self.n

    def raw_pair(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        if self.ab is not None:
            img = self.ab.get(i)
            w = img.shape[1] // 2
            return img[:, :w], img[:, w:]
        if self.source is not None:
            img = self.source.get(i)
            return img, img  # input made after augmentation
        ia, ib = self.pairs[i]
        return self.a.get(ia), self.b.get(ib)

    def make(self, i: int, rng: np.random.Generator | None):
        a, b = self.raw_pair(i)
        if rng is not None:
            p = self.aug.params(rng)
            a, b = self.aug.apply(a, p), self.aug.apply(b, p)
        else:
            a, b = resize_square(a, self.aug.size), resize_square(b, self.aug.size)
        if self.source is not None:
            a = degrade(b, self.degrade_kind or "grayscale")
        if self.reverse:
            a, b = b, a
        return {"A": to_tensor(a), "B": to_tensor(b)}

    def __getitem__(self, key):
        i, k = key
        return self.make(i, _rng(self.seed, k))


class SwapDataset(Dataset):
    """Two identities for the face-swap autoencoder: each sample is randomly transformed (target)
    and additionally warped (input)."""

    kind = "swap"

    def __init__(self, a: Source, b: Source, size: int, seed: int = 0, warp: dict | None = None):
        self.a, self.b, self.size, self.seed = a, b, size, seed
        self.warp = {"rotation": 10.0, "zoom": 0.05, "shift": 0.05, "sigma": 0.03, "flip": True,
                     **(warp or {})}

    @property
    def sizes(self):
        return [len(self.a), len(self.b)]

    def __len__(self):
        return max(self.sizes)

    def _one(self, img, rng):
        w = self.warp
        t = random_transform(resize_square(img, self.size), rng, w["rotation"], w["zoom"], w["shift"], w["flip"])
        return to_tensor(random_warp(t, rng, w["sigma"])), to_tensor(t)

    def __getitem__(self, key):
        ia, ib, k = key
        rng = _rng(self.seed, k)
        a_in, a = self._one(self.a.get(ia), rng)
        b_in, b = self._one(self.b.get(ib), rng)
        return {"A_in": a_in, "A": a, "B_in": b_in, "B": b}


def fixed_batch(dataset, sample_sources: dict, n: int) -> dict[str, torch.Tensor]:
    """Un-augmented images for sample grids: the first ``n`` of each held-out sample source."""
    size = dataset.aug.size if hasattr(dataset, "aug") else dataset.size

    def spread(m):  # evenly spaced picks (consecutive video frames look alike)
        return sorted({int(round(v)) for v in np.linspace(0, m - 1, min(n, m))})

    if isinstance(dataset, PairedDataset):
        src = sample_sources.get("paired", dataset)
        items = [src.make(i, None) for i in spread(len(src))]
        return {k: torch.stack([it[k] for it in items]) for k in ("A", "B")}
    out = {}
    for key in ("A", "B"):
        s = sample_sources.get(key)
        imgs = [resize_square(s.get(i), size) for i in spread(len(s))]
        out[key] = torch.stack([to_tensor(x) for x in imgs])
    return out


def build_data(cfg: dict, kind: str, *, progress: bool = True):
    """Returns (dataset, fixed sample batch) for a resolved config and a method's data kind."""
    dc = cfg["data"]
    size = int(cfg["size"])
    load = int(dc.get("load_size") or size)
    opts = DataOptions(load_size=load, seed=int(cfg["seed"]), align=bool(dc.get("align")),
                       template=cfg.get("template"), detector=dc.get("detector", "dlib-hog"),
                       cache_dir=dc.get("cache_dir", "cache/aligned"), on_miss=dc.get("on_miss", "drop"),
                       preload=dc.get("preload", "auto"), progress=progress)
    seed = int(cfg["seed"])
    n = int(dc.get("sample_n", 4))

    def held_out(key, train_src):
        spec = dc.get(f"sample_{key}")
        if spec is not None:
            return build_source(spec, opts)
        main = dc.get(key)
        if isinstance(main, dict) and "utkface" in main:
            d = dict(main)
            d["limit"] = n
            try:
                return build_source(d, opts, split="test")
            except ConfigError:
                pass
        return train_src

    if kind in ("unpaired", "swap"):
        a, b = build_source(dc.get("a"), opts), build_source(dc.get("b"), opts)
        if kind == "unpaired":
            ds = UnpairedDataset(a, b, Augment(size, dc.get("flip", True), dc.get("jitter", 0.0),
                                               dc.get("color", 0.0)), seed)
        else:
            ds = SwapDataset(a, b, size, seed, dc.get("warp"))
        samples = {"A": held_out("a", a), "B": held_out("b", b)}
        return ds, fixed_batch(ds, samples, n)
    if kind == "paired":
        aug = Augment(size, dc.get("flip", True), dc.get("jitter", 0.0), 0.0)
        reverse = str(dc.get("direction", "AtoB")).lower() == "btoa"
        if dc.get("ab") is not None:
            ab = _side_by_side(dc["ab"], opts, load)  # keeps the 2:1 aspect (A left, B right)
            ds = PairedDataset(aug, seed, ab=ab, reverse=reverse)
            sample = ds
        elif dc.get("source") is not None:
            src = build_source(dc["source"], opts)
            ds = PairedDataset(aug, seed, source=src, degrade_kind=dc.get("degrade", "grayscale"), reverse=reverse)
            hs = held_out("source", src)
            sample = PairedDataset(aug, seed, source=hs, degrade_kind=ds.degrade_kind, reverse=reverse)
        else:
            a, b = build_source(dc.get("a"), opts), build_source(dc.get("b"), opts)
            ds = PairedDataset(aug, seed, a=a, b=b, reverse=reverse)
            sample = ds
        return ds, fixed_batch(ds, {"paired": sample}, n)
    raise ConfigError(f"unknown data kind {kind!r}")


def _side_by_side(spec, opts: DataOptions, load: int) -> Source:
    d = _spec_dict(spec)
    paths, _, names, info = _select(d)
    if not names:
        raise ConfigError(f"data source selects no images: {d!r}")
    import cv2

    arrs = []
    for p in paths:
        img = read_rgb(p)
        arrs.append(cv2.resize(img, (2 * load, load), interpolation=cv2.INTER_AREA))
    return Source(names, load, arrays=np.stack(arrs), info=info)
