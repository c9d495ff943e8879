"""The method template in docs/engine/NEW_METHOD.md is real code: register it and train it."""
import json
import re
from pathlib import Path

import cv2
import numpy as np
import torch

from facegan.train.config import resolve
from facegan.train.methods import METHODS
from facegan.train.trainer import train

torch.set_num_threads(1)
DOC = Path(__file__).resolve().parents[1] / "docs" / "engine" / "NEW_METHOD.md"


def test_new_method_template_trains(tmp_path):
    code = re.search(r"```python\n(.*?)```", DOC.read_text(), re.S).group(1)
    try:
        exec(compile(code, str(DOC), "exec"), {"__name__": "new_method_template"})
        assert "paired-l1" in METHODS
        src = tmp_path / "imgs"
        src.mkdir()
        rng = np.random.default_rng(0)
        for i in range(3):
            cv2.imwrite(str(src / f"{i}.png"), cv2.resize(rng.integers(0, 255, (4, 4, 3)).astype(np.uint8), (32, 32)))
        cfg = resolve({"method": "paired-l1", "size": 32, "threads": 1, "out_dir": str(tmp_path / "o"),
                       "data": {"source": str(src), "degrade": "blur"},
                       "model": {"ngf": 8, "ndf": 8}, "loss": {"lambda_adv": 1.0},
                       "train": {"steps": 8, "batch": 2, "lr": 1e-3, "lr_policy": "constant", "log_every": 1}})
        res = train(cfg, progress=False, log=lambda m: None)
        assert res["step"] == 8
        lines = [json.loads(x) for x in (tmp_path / "o/losses.jsonl").read_text().splitlines()]
        assert lines[-1]["L1"] < lines[0]["L1"] and "D" in lines[0]
        meta = json.loads((tmp_path / "o/last/meta.json").read_text())
        assert meta["generator"]["class"] == "UnetGenerator" and meta["generator"]["direction"] == "A->B"
    finally:
        METHODS.pop("paired-l1", None)
