"""Judges: attribute classifiers (gender, age, expression) and identity embeddings."""
from __future__ import annotations

import numpy as np


def analyze_face(rgb: np.ndarray, face, *, embedding: bool = False) -> dict:
    """Every judge on one detected face (a ``facegan.faces.Face`` from ``detect_faces(rgb)``).

    Returns JSON-ready fields: gender, p_female, age (years, expected value over 81 bins) with the
    age/gender judge's name; expression (argmax), its confidence and the 7 probabilities; with
    ``embedding=True`` the 128-d identity descriptor (compare with ``get_identity().compare``).
    """
    from .agegender import get_age_gender
    from .expression import get_expression
    from .identity import get_identity

    ident = get_identity()
    dl5 = ident.dlib5_of(rgb, face)
    ag = get_age_gender().predict(rgb, dl5)
    ex = get_expression().predict(rgb, face)
    out = {"gender": ag["gender"], "p_female": round(float(ag["p_female"]), 4),
           "age": round(float(ag["age"]), 1), "gender_judge": ag["judge"], "age_judge": ag["judge"],
           "expression": ex["expression"], "expression_confidence": round(ex["confidence"], 4),
           "expression_probabilities": ex["probabilities"], "expression_judge": ex["judge"]}
    if embedding:
        e = ident.embed(rgb, dl5)
        out["embedding"] = [round(float(v), 6) for v in e]
        out["identity_judge"] = ident.name
    return out
