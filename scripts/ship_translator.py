"""Copies a trained attr-translator checkpoint into the package as fp16 safetensors + manifest.

    python scripts/ship_translator.py runs/gender-translator/last [--name gender-translator] \
        [--default-strength swap-gender=1.0 --default-strength anonymize=1.25] \
        [--max-strength swap-gender=1.5 --max-strength anonymize=1.5]

Writes src/facegan/weights/NAME/{model.safetensors, manifest.json}. The model card (MODEL_CARD.md)
is written by hand from the evaluation report (facegan evaluate) and kept next to them.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from safetensors.torch import load_file, save_file

from facegan.weights import ROOT, sha256_file


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("checkpoint", type=Path, help="folder with meta.json and G_ema.safetensors")
    ap.add_argument("--name", default="gender-translator")
    ap.add_argument("--default-strength", action="append", default=[], metavar="OP=S",
                    help="scale of the change OP applies when the user gives none (chosen on held-out photos)")
    ap.add_argument("--max-strength", action="append", default=[], metavar="OP=S",
                    help="strongest scale OP may redo a face at when its output fails verification")
    a = ap.parse_args()
    meta = json.loads((a.checkpoint / "meta.json").read_text())
    cfg = meta["config"]
    sd = load_file(str(a.checkpoint / "G_ema.safetensors"))
    sd = {k: v.half().contiguous() if v.is_floating_point() else v for k, v in sd.items()}
    out = ROOT / a.name
    out.mkdir(parents=True, exist_ok=True)
    wf = out / "model.safetensors"
    save_file(sd, str(wf), metadata={"format": "pt", "step": str(meta["step"])})
    manifest = {
        "name": a.name,
        "class": "ResidualTranslator",
        "domains": cfg["domains"],
        "attribute": cfg.get("attribute", "gender"),
        "ngf": cfg["ngf"],
        "n_blocks": cfg["n_blocks"],
        "lowpass": cfg.get("lowpass", 1),
        **({"residual_scale": cfg["residual_scale"]} if cfg.get("residual_scale", 1.0) != 1.0 else {}),
        "size": cfg["size"],
        "template": "utkface",
        "step": meta["step"],
        **({"default_strength": {k: float(v) for k, v in (x.split("=", 1) for x in a.default_strength)}}
           if a.default_strength else {}),
        **({"max_strength": {k: float(v) for k, v in (x.split("=", 1) for x in a.max_strength)}}
           if a.max_strength else {}),
        "dtype": "float16",
        "sha256": sha256_file(wf),
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    print(json.dumps({"weights": str(wf), "bytes": wf.stat().st_size, **manifest}))


if __name__ == "__main__":
    main()
