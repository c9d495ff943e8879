"""Per-sample augmentations on uint8 RGB arrays. Every function takes an explicit
``np.random.Generator`` so a sample's augmentation is a pure function of (seed, sample counter):
data loading stays reproducible with any number of workers and across resume."""
from __future__ import annotations

import cv2
import numpy as np


def resize_square(img: np.ndarray, size: int) -> np.ndarray:
    """Centre-crops to a square and resizes to ``size`` (area filter when shrinking)."""
    h, w = img.shape[:2]
    if h != w:
        s = min(h, w)
        y, x = (h - s) // 2, (w - s) // 2
        img = img[y:y + s, x:x + s]
    if img.shape[0] != size:
        interp = cv2.INTER_AREA if img.shape[0] > size else cv2.INTER_CUBIC
        img = cv2.resize(img, (size, size), interpolation=interp)
    return np.ascontiguousarray(img)


class Augment:
    """Light augmentation: horizontal flip, random-resized crop (``jitter`` = max fraction of the
    side cut away), brightness/contrast/saturation jitter (``color`` = max relative change).
    ``params`` draws one set of parameters so paired images get the same geometry."""

    def __init__(self, size: int, flip: bool = True, jitter: float = 0.0, color: float = 0.0):
        self.size, self.flip, self.jitter, self.color = size, flip, jitter, color

    def params(self, rng: np.random.Generator) -> dict:
        p = {"flip": bool(self.flip and rng.random() < 0.5)}
        if self.jitter > 0:
            s = 1.0 - rng.uniform(0, self.jitter)
            p["crop"] = (s, rng.uniform(0, 1 - s), rng.uniform(0, 1 - s))
        if self.color > 0:
            p["color"] = tuple(1.0 + rng.uniform(-self.color, self.color, 3))
        return p

    def apply(self, img: np.ndarray, p: dict, color: bool = True) -> np.ndarray:
        if "crop" in p:
            s, fx, fy = p["crop"]
            h, w = img.shape[:2]
            cw, ch = max(1, int(round(w * s))), max(1, int(round(h * s)))
            x0, y0 = int(round(fx * w)), int(round(fy * h))
            img = img[y0:y0 + ch, x0:x0 + cw]
        img = resize_square(img, self.size)
        if p.get("flip"):
            img = img[:, ::-1]
        if color and "color" in p:
            b, c, s = p["color"]
            f = img.astype(np.float32)
            gray = f.mean(2, keepdims=True)
            f = gray + (f - gray) * s  # saturation
            f = (f - f.mean()) * c + f.mean()  # contrast
            img = np.clip(f * b, 0, 255).astype(np.uint8)  # brightness
        return np.ascontiguousarray(img)

    def __call__(self, img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return self.apply(img, self.params(rng))


def random_transform(img: np.ndarray, rng: np.random.Generator, rotation: float = 10.0, zoom: float = 0.05,
                     shift: float = 0.05, flip: bool = True) -> np.ndarray:
    """Random rotation (degrees), zoom, shift (fractions of the side) and horizontal flip."""
    h, w = img.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), rng.uniform(-rotation, rotation), rng.uniform(1 - zoom, 1 + zoom))
    m[:, 2] += (rng.uniform(-shift, shift) * w, rng.uniform(-shift, shift) * h)
    out = cv2.warpAffine(img, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    if flip and rng.random() < 0.5:
        out = out[:, ::-1]
    return np.ascontiguousarray(out)


def random_warp(img: np.ndarray, rng: np.random.Generator, sigma: float = 0.03, grid: int = 5) -> np.ndarray:
    """Face-swap warp: a smooth random displacement field (``grid`` x ``grid`` control points moved by
    N(0, sigma * side) px, cubic-interpolated). The autoencoder learns to undo it, which forces the
    shared encoder to capture face structure rather than copy pixels."""
    h, w = img.shape[:2]
    disp = rng.normal(0.0, sigma * w, size=(2, grid, grid)).astype(np.float32)
    dx = cv2.resize(disp[0], (w, h), interpolation=cv2.INTER_CUBIC)
    dy = cv2.resize(disp[1], (w, h), interpolation=cv2.INTER_CUBIC)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    return cv2.remap(img, xx + dx, yy + dy, interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


DEGRADATIONS = ("grayscale", "blur", "downscale", "edges")


def degrade(img: np.ndarray, kind: str) -> np.ndarray:
    """Makes a paired input from a target image: ``grayscale`` (colourisation), ``blur`` (deblurring),
    ``downscale`` (4x super-resolution), ``edges`` (edges -> photo)."""
    if kind == "grayscale":
        g = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
        return np.repeat(g[..., None], 3, 2)
    if kind == "blur":
        return cv2.GaussianBlur(img, (0, 0), max(img.shape[0] / 32, 1.0))
    if kind == "downscale":
        h, w = img.shape[:2]
        small = cv2.resize(img, (max(w // 4, 1), max(h // 4, 1)), interpolation=cv2.INTER_AREA)
        return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
    if kind == "edges":
        e = 255 - cv2.Canny(cv2.cvtColor(img, cv2.COLOR_RGB2GRAY), 60, 140)
        return np.repeat(e[..., None], 3, 2)
    raise ValueError(f"unknown degradation {kind!r}; one of {DEGRADATIONS}")
