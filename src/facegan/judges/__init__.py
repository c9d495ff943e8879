"""Judges: attribute classifiers (gender, age, expression) and identity embeddings."""
from __future__ import annotations

import numpy as np


def analyze_face(rgb: np.ndarray, face, *, embedding: bool = False) -> dict:
    """Every judge on one detected face (a ``facegan.faces.Face`` from ``detect_faces(rgb)``).

    Returns JSON-ready fields: gender and p_female as the swap-gender / anonymize ops read an original (judge
    1, voting with faceres' gender head when faceres is fetched: :mod:`facegan.judges.gender_vote`, averaged with
    the gender probe on dlib's descriptor: :mod:`facegan.judges.gender_probe`), age
    (years, expected value over 81 bins, judge 1) with the judges' names; expression (argmax), its confidence and the 7 probabilities; with
    ``embedding=True`` the 128-d identity descriptor (compare with ``get_identity().compare``).
    """
    from .agegender import get_age_gender
    from .expression import get_expression
    from .gender_probe import read_source
    from .gender_vote import get_op_gender_judge
    from .identity import get_identity

    ident = get_identity()
    dl5 = ident.dlib5_of(rgb, face)
    ag = read_source(get_op_gender_judge("auto"), rgb, dl5, face)  # as the ops read an original
    ex = get_expression().predict(rgb, face)
    out = {"gender": ag["gender"], "p_female": round(float(ag["p_female"]), 4),
           "age": round(float(ag["age"]), 1), "gender_judge": ag["judge"], "age_judge": get_age_gender().name,
           "expression": ex["expression"], "expression_confidence": round(ex["confidence"], 4),
           "expression_probabilities": ex["probabilities"], "expression_judge": ex["judge"]}
    if embedding:
        e = ag["descriptor"]
        out["embedding"] = [round(float(v), 6) for v in e]
        out["identity_judge"] = ident.name
    return out
