"""The gender probe: a logistic regression on dlib's 128-d identity descriptor (``gender-dlib-probe``), trained
by facegan on the UTKFace ``train`` split (``scripts/train_gender_probe.py``; model card in
``weights/gender-dlib-probe``).

It only helps decide *which way* the ops push a face: :func:`read_source` averages it with the op's gender
judge (judge 1, or the vote of judges 1 and 3) on the untouched photo. The descriptor is the one the ops
compute anyway for the identity check, so it costs one dot product. It never reads an output: the checks
after the change (retries, ``reads_as_target``) stay the op's judge's alone, and the independent judge 2
(facegan's ResNet-18, also trained on UTKFace ``train``) still decides nothing.

Measured (``metrics.json`` beside the weights): on 5-fold cross-validation over the 5,033 ``train`` faces
the faces read the wrong way fall from 124 (the vote) to 104 (the vote + the probe), and with judge 1 alone
from 142 to 105; on the 565 ``test`` faces from 22 to 12 (28 to 14).
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

NAME = "gender-dlib-probe"


class GenderProbe:
    name = NAME

    def __init__(self, weight: np.ndarray, bias: float, features: str):
        self.weight, self.bias, self.features = np.asarray(weight, np.float64), float(bias), features

    def p_female(self, descriptor: np.ndarray) -> float:
        """P(female) from one dlib descriptor (128,)."""
        z = float(np.dot(self.weight, np.asarray(descriptor, np.float64))) + self.bias
        return float(1.0 / (1.0 + np.exp(-z)))


@lru_cache(maxsize=1)
def get_gender_probe() -> GenderProbe:
    from ..errors import ModelError
    from ..weights import load_shipped

    sd, manifest = load_shipped(NAME)
    w = sd["weight"].numpy()
    if w.shape != (manifest.get("dim", 128),):
        raise ModelError(f"{NAME}: weight has shape {tuple(w.shape)}, expected ({manifest.get('dim', 128)},)")
    return GenderProbe(w, float(sd["bias"].numpy().reshape(-1)[0]), manifest.get("features", ""))


def read_source(judge, rgb: np.ndarray, d5: np.ndarray, face, probe: bool = True) -> dict:
    """The reading an op decides a face's direction with: ``judge.predict`` (see
    :mod:`facegan.judges.gender_vote`) and, with ``probe``, its P(female) averaged with the probe's on dlib's
    descriptor of the face (``descriptor`` in the answer, for reuse as the original's in the identity check;
    ``descriptor_model`` names the identity model: dlib's, which the probe was trained on).
    The answer keeps the judge's own reading as ``p_female_judge`` and the probe's as ``p_female_probe``;
    ``judge`` names both."""
    r = dict(judge.predict(rgb, d5, face))
    if not probe:
        return r
    from .identity import get_identity

    ident, pr = get_identity(), get_gender_probe()
    desc = ident.embed(rgb, face if face is not None else d5)
    p = pr.p_female(desc)
    pf = (float(r["p_female"]) + p) / 2
    r.update({"p_female_judge": float(r["p_female"]), "p_female_probe": p, "p_female": pf,
              "gender": "female" if pf >= 0.5 else "male", "judge": f"{r.get('judge', getattr(judge, 'name', 'judge'))}+{pr.name}",
              "descriptor": desc, "descriptor_model": ident.name})
    return r
