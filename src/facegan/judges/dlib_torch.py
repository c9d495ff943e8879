"""dlib's face-recognition ResNet (``dlib_face_recognition_resnet_model_v1``) run by PyTorch.

The weights are read from the model file dlib itself loads (the one in ``face_recognition_models``,
CC0): nothing new is shipped, and the descriptors are dlib's (measured: within 3e-7 of
``compute_face_descriptor``). dlib computes one 150 px chip in ~73 ms on one core of this project's
2-core CPU; this network, the same arithmetic in PyTorch, takes ~6 ms — and the identity check is the
step the anonymize op repeats (each retry re-embeds the face).

The file is dlib's own serialisation of the network: layers from the input outwards, each named
(``con_4``, ``affine_``, ``fc_2`` ...) and followed by its parameters as a tensor (version 2, four
sizes, then little-endian float32). Only the parameters are read; the layout is checked against the
architecture below (dlib's ``dnn_face_recognition_ex``: a 29-conv ResNet at 150 px, batch norm folded
into per-channel affines, 128-d output), so a different file fails loudly instead of computing
something else. :func:`load_net` returns ``None`` on any mismatch and the caller keeps dlib.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

# (channels, downsample) of the residual blocks after the stem, input side first
BLOCKS = ([(32, False)] * 3 + [(64, True)] + [(64, False)] * 3 + [(128, True)] + [(128, False)] * 2
          + [(256, True)] + [(256, False)] * 2 + [(256, True)])
INPUT_SIZE = 150
OUT_DIM = 128


class _Reader:
    """dlib's serialisation: integers as a control byte (byte count, 0x80 = negative) then little-endian
    bytes; strings as length + bytes; floats as (mantissa, exponent) integers; tensors as above."""

    def __init__(self, data: bytes, offset: int = 0):
        self.b, self.o = data, offset

    def int(self) -> int:
        c = self.b[self.o]
        n = c & 0x0F
        if n > 8:
            raise ValueError(f"bad integer at byte {self.o}")
        v = int.from_bytes(self.b[self.o + 1:self.o + 1 + n], "little")
        self.o += 1 + n
        return -v if c & 0x80 else v

    def str(self) -> str:
        n = self.int()
        s = self.b[self.o:self.o + n].decode("latin1")
        self.o += n
        return s

    def float(self) -> float:
        m = self.int()
        return float(m * 2.0 ** self.int())

    def tensor(self) -> np.ndarray:
        if self.int() != 2:
            raise ValueError(f"unknown tensor version at byte {self.o}")
        shape = [self.int() for _ in range(4)]
        n = int(np.prod(shape))
        if min(shape) < 0 or self.o + 4 * n > len(self.b):
            raise ValueError(f"bad tensor size {shape} at byte {self.o}")
        a = np.frombuffer(self.b, "<f4", n, self.o).astype(np.float32)
        self.o += 4 * n
        return a


def read_params(path: str | Path) -> dict:
    """The network's parameters from dlib's model file: ``mean`` (RGB input mean), ``convs`` (weight
    OIHW, bias, stride, padding), ``affines`` (gamma, beta) and ``fc`` (in x out). Raises ValueError
    when the file does not have the expected layout."""
    data = Path(path).read_bytes()
    i = data.find(b"\x01\x15input_rgb_image_sized")
    if i < 0:
        raise ValueError("not a dlib input_rgb_image_sized network")
    r = _Reader(data, i)
    r.str()
    mean = [r.float() for _ in range(3)]
    convs, affines, fc, end = [], [], None, r.o
    for m in re.finditer(rb"\x01\x05con_4|\x01\x07affine_|\x01\x04fc_2", data):
        if m.start() < end:  # inside the parameters just read
            continue
        r = _Reader(data, m.start())
        name = r.str()
        if name == "fc_2":
            n_out, n_in = r.int(), r.int()
            t = r.tensor()
            fc = t[:n_in * n_out].reshape(n_in, n_out)
        else:
            t = r.tensor()
            if name == "con_4":
                nf, kh, kw, sy, sx, py, px = (r.int() for _ in range(7))
                k = (t.size - nf) // (nf * kh * kw)
                if k * nf * kh * kw + nf != t.size or sy != sx or py != px:
                    raise ValueError(f"unexpected convolution layout at byte {m.start()}")
                convs.append((t[:nf * k * kh * kw].reshape(nf, k, kh, kw), t[nf * k * kh * kw:], sy, py))
            else:
                affines.append((t[:t.size // 2], t[t.size // 2:]))
        end = r.o
    _check_layout(convs, affines, fc)
    return {"mean": mean, "convs": convs, "affines": affines, "fc": fc}


def _check_layout(convs, affines, fc) -> None:
    want = [(32, 3, 7, 2, 0)]
    c_in = 32
    for c, down in BLOCKS:
        want += [(c, c_in, 3, 2 if down else 1, 0 if down else 1), (c, c, 3, 1, 1)]
        c_in = c
    got = [(w.shape[0], w.shape[1], w.shape[2], s, p) for w, _, s, p in convs]
    if got != want:
        raise ValueError("the model's convolutions are not dlib_face_recognition_resnet_model_v1's")
    if [len(g) for g, _ in affines] != [w[0] for w in want]:
        raise ValueError("the model's affine layers do not match its convolutions")
    if fc is None or fc.shape != (256, OUT_DIM):
        raise ValueError("the model's output layer is not 256 -> 128")


def _build(params: dict):
    import torch
    import torch.nn.functional as F

    class DlibResNet(torch.nn.Module):
        """Input (N, 3, 150, 150) float RGB 0-255 (a dlib face chip); output (N, 128) descriptors."""

        def __init__(self):
            super().__init__()
            self.register_buffer("mean", torch.tensor(params["mean"], dtype=torch.float32).view(1, 3, 1, 1))
            self.convs = torch.nn.ModuleList()
            for (w, b, s, p), (g, be) in zip(params["convs"], params["affines"]):
                conv = torch.nn.Conv2d(w.shape[1], w.shape[0], w.shape[2], s, p)
                conv.weight.data = torch.from_numpy(w.copy())
                conv.bias.data = torch.from_numpy(b.copy())
                conv.register_buffer("gamma", torch.from_numpy(g.copy()).view(1, -1, 1, 1))
                conv.register_buffer("beta", torch.from_numpy(be.copy()).view(1, -1, 1, 1))
                self.convs.append(conv)
            self.register_buffer("fc", torch.from_numpy(params["fc"].copy()))

        def _ca(self, x, i):  # convolution, then the folded batch norm
            c = self.convs[i]
            return c(x) * c.gamma + c.beta

        @staticmethod
        def _add(a, b):
            # dlib's add_prev: tensors of different sizes are added as if zero-padded to the larger
            # (the downsampling shortcut: average-pooled, its channels padded with zeros; after the
            # 8 px stage the block's 3x3 output lands in the corner of the pooled 4x4)
            # (level 1: a 256-channel 3x3 block output plus a 128-channel 4x4 shortcut -> 256 x 4x4)
            if a.shape == b.shape:
                return a + b
            o = a.new_zeros([max(u, v) for u, v in zip(a.shape, b.shape)])
            o[:, :a.shape[1], :a.shape[2], :a.shape[3]] += a
            o[:, :b.shape[1], :b.shape[2], :b.shape[3]] += b
            return o

        def forward(self, x):
            x = (x - self.mean) / 256.0
            x = F.max_pool2d(F.relu(self._ca(x, 0)), 3, 2)
            i = 1
            for _, down in BLOCKS:
                y = self._ca(F.relu(self._ca(x, i)), i + 1)
                i += 2
                x = F.relu(self._add(y, F.avg_pool2d(x, 2, 2) if down else x))
            return x.mean((2, 3)) @ self.fc

    return DlibResNet().eval()


def load_net(path: str | Path):
    """The PyTorch network for dlib's model file, or ``None`` when the file is not that network
    (or PyTorch is missing)."""
    try:
        return _build(read_params(path))
    except (ValueError, ImportError, OSError):
        return None
