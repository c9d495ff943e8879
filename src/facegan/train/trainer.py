"""The training loop shared by every method: data stream, LR schedules, EMA generators, AMP,
DDP gradient averaging, exact resume, sample grids, TensorBoard scalars and a tqdm progress bar.

Checkpoint folder ``<out_dir>/last`` (see COMMON schema): ``<net>.safetensors`` for every network and
EMA copy (``G_ema``), ``<opt>.optim.pt`` (loaded with ``weights_only``), ``state.safetensors`` (RNG
state, image pools) and ``meta.json`` = {"method", "step", "config", "generator": {"class", "kwargs",
"file", ...}, "domains", "io": {"size", "template", "range"}, "params", "trainer": {schedulers...}}.
Resuming restores all of it, so N steps + resume + M steps equals N + M steps straight.
"""
from __future__ import annotations

import json
import math
import os
import random
import shutil
import time
from pathlib import Path

import numpy as np
import torch

from ..errors import ConfigError
from . import distributed as dist_util
from .checkpoint import load_checkpoint, save_checkpoint
from .config import Cfg, dump
from .datasets import StreamBatchSampler, build_data, to_uint8
from .ema import EMA
from .methods import get_method


def resolve_amp(amp: str, device: torch.device) -> torch.dtype | None:
    amp = str(amp).lower()
    if amp in ("off", "false", "none", "0"):
        return None
    if amp == "auto":
        if device.type != "cuda":
            return None
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16  # pragma: no cover
    if amp in ("bf16", "bfloat16"):
        return torch.bfloat16
    if amp in ("fp16", "float16", "true", "on"):
        return torch.float16
    raise ConfigError(f"amp must be auto|off|bf16|fp16, not {amp!r}")


def build_method(cfg: Cfg, device="cpu", world: int = 1, amp_dtype=None, scaler=None):
    return get_method(cfg.method)(cfg, device, world, amp_dtype, scaler)


def describe(cfg: Cfg) -> str:
    """Resolved config + parameter counts per network (``facegan train --dry-run``)."""
    torch.manual_seed(int(cfg.seed))
    method = build_method(cfg, "cpu")
    lines = [dump(cfg).rstrip(), "", f"# networks ({cfg.method})"]
    total = 0
    for n, c in method.param_counts().items():
        kind = method.gen_specs[n]["class"] if n in method.gen_specs else type(method.nets[n]).__name__
        lines.append(f"#   {n:<6} {kind:<28} {c:>12,d} params")
        total += c
    lines.append(f"#   {'total':<35} {total:>12,d} params")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- sample grids
def _label(text: str, h: int, w: int = 96) -> np.ndarray:
    import cv2

    img = np.full((h, w, 3), 255, np.uint8)
    cv2.putText(img, text, (3, h // 2 + 4), cv2.FONT_HERSHEY_SIMPLEX, 0.33, (0, 0, 0), 1, cv2.LINE_AA)
    return img


def make_grid(rows: list[tuple[str, torch.Tensor]]) -> np.ndarray:
    out = []
    for label, x in rows:
        imgs = to_uint8(x)
        h = imgs.shape[1]
        out.append(np.concatenate([_label(label, h)] + list(imgs), 1))
    w = max(r.shape[1] for r in out)
    out = [np.pad(r, ((0, 0), (0, w - r.shape[1]), (0, 0)), constant_values=255) for r in out]
    return np.concatenate(out, 0)


def save_grid(path: Path, grid: np.ndarray, info: dict | None = None) -> None:
    try:
        from ..io import write_image

        write_image(path, grid, synthetic=True, info=info, overwrite=True)
    except ImportError:  # pragma: no cover - io package always present in the project
        from PIL import Image

        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(grid).save(path)


# ----------------------------------------------------------------------------- state
def _rng_tensors(device: torch.device) -> dict[str, torch.Tensor]:
    st = {"rng.torch": torch.get_rng_state()}
    if device.type == "cuda":  # pragma: no cover
        st["rng.cuda"] = torch.cuda.get_rng_state(device)
    return st


def _set_rng(st: dict, device: torch.device) -> None:
    if "rng.torch" in st:
        torch.set_rng_state(st["rng.torch"])
    if device.type == "cuda" and "rng.cuda" in st:  # pragma: no cover
        torch.cuda.set_rng_state(st["rng.cuda"], device)


class _Schedules:
    """LR policy: constant | linear (constant then linear decay to 0) | plateau (ReduceLROnPlateau on
    the mean of a logged loss over ``plateau_window`` steps)."""

    def __init__(self, cfg: Cfg, opts: dict):
        t = cfg.train
        self.policy = t.lr_policy
        if self.policy not in ("constant", "linear", "plateau"):
            raise ConfigError(f"train.lr_policy must be constant|linear|plateau, not {self.policy!r}")
        self.steps = int(t.steps)
        self.decay_start = float(t.decay_start)
        self.opts = opts
        self.window, self.monitor = int(t.plateau_window), t.plateau_monitor
        self.acc: list[float] = []
        self.plateau = {}
        if self.policy == "plateau":
            for n, o in opts.items():
                self.plateau[n] = torch.optim.lr_scheduler.ReduceLROnPlateau(
                    o, mode="min", factor=float(t.plateau_factor), patience=int(t.plateau_patience))

    def factor(self, step: int) -> float:
        if self.policy != "linear":
            return 1.0
        start = int(self.decay_start * self.steps)
        if step < start:
            return 1.0
        return max(0.0, (self.steps - step) / max(1, self.steps - start))

    def before_step(self, step: int) -> None:
        if self.policy == "linear":
            f = self.factor(step)
            for o in self.opts.values():
                for g in o.param_groups:
                    g["lr"] = g["initial_lr"] * f

    def after_step(self, losses: dict) -> None:
        if self.policy != "plateau":
            return
        if self.monitor not in losses:
            raise ConfigError(f"train.plateau_monitor {self.monitor!r} is not a logged loss: {', '.join(losses)}")
        self.acc.append(float(losses[self.monitor]))
        if len(self.acc) >= self.window:
            m = float(np.mean(self.acc))
            self.acc = []
            for s in self.plateau.values():
                s.step(m)

    def lr(self) -> float:
        o = next(iter(self.opts.values()))
        return float(o.param_groups[0]["lr"])

    def state(self) -> dict:
        return {"acc": self.acc, "plateau": {n: s.state_dict() for n, s in self.plateau.items()}}

    def load(self, st: dict) -> None:
        self.acc = list(st.get("acc", []))
        for n, s in self.plateau.items():
            if n in st.get("plateau", {}):
                s.load_state_dict(st["plateau"][n])


# ----------------------------------------------------------------------------- train
def _every(step: int, every) -> bool:
    """True every ``every`` steps; 0 / null means never (the end of a run still samples and saves)."""
    every = int(every or 0)
    return every > 0 and step % every == 0


def train(cfg: Cfg, *, max_minutes: float | None = None, max_steps: int | None = None, progress: bool = True,
          log=print, callback=None) -> dict:
    """Trains (or resumes) ``cfg``. ``max_steps`` stops after that many steps in this call (the
    schedule still spans ``train.steps``); ``max_minutes`` likewise stops on time. Both save.
    ``callback(step_done, method, losses)`` runs after every step (every rank)."""
    info = dist_util.init(cfg.get("device", "auto"))
    try:
        res = _train(cfg, info, max_minutes, max_steps, progress, log, callback)
        # every rank is done before any tears the process group down: a rank that leaves while rank 0
        # still writes its last checkpoint can abort in gloo's teardown (seen as SIGABRT in CI)
        dist_util.barrier(info.world)
        return res
    finally:
        dist_util.cleanup(info)


def _train(cfg: Cfg, info, max_minutes, max_steps, progress, log, callback=None) -> dict:
    from torch.utils.data import DataLoader
    from tqdm import tqdm

    dev, main = info.device, info.is_main
    if dev.type == "cpu" and int(cfg.get("threads") or 0) > 0:
        torch.set_num_threads(int(cfg.threads))
    if dev.type == "cuda":  # pragma: no cover
        torch.backends.cudnn.benchmark = True
    amp_dtype = resolve_amp(cfg.get("amp", "auto"), dev)
    scaler = torch.amp.GradScaler(dev.type, enabled=amp_dtype == torch.float16)
    seed = int(cfg.seed)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    method = build_method(cfg, dev, info.world, amp_dtype, scaler)
    for m in method.nets.values():
        dist_util.broadcast_module(m, info.world)
    decay = float(cfg.train.ema or 0)
    emas = {n: EMA(method.nets[n], decay) for n in method.ema_nets} if decay > 0 else {}
    sched = _Schedules(cfg, method.opts)
    dataset, fixed = build_data(cfg, method.data_kind, progress=main and progress)
    fixed = method.to_device(fixed)

    out = Path(cfg.out_dir)
    ck = out / "last"
    steps = int(cfg.train.steps)
    start = 0
    modules = {**method.nets, **{f"{n}_ema": e.model for n, e in emas.items()}}
    torch.manual_seed(seed + 1 + info.rank)  # the training stream's RNG (init above used `seed`)
    if cfg.train.resume and (ck / "meta.json").exists():
        from safetensors.torch import load_file

        prev = json.loads((ck / "meta.json").read_text()).get("method")
        if prev != cfg.method:
            raise ConfigError(f"{ck} holds a {prev!r} run, not {cfg.method!r}; use another --out")
        try:
            meta = load_checkpoint(ck, modules, method.opts)
        except RuntimeError as e:  # shapes/keys changed (e.g. model.ngf) since the checkpoint
            raise ConfigError(f"{ck} does not match this config's networks (use another --out): "
                              f"{str(e).splitlines()[0]}") from None
        start = int(meta["step"])
        st = load_file(str(ck / "state.safetensors")) if (ck / "state.safetensors").exists() else {}
        _set_rng(st, dev)
        method.load_extra_state({k[6:]: v for k, v in st.items() if k.startswith("extra.")})
        tr = meta.get("trainer", {})
        sched.load(tr.get("sched", {}))
        if tr.get("scaler"):
            scaler.load_state_dict(tr["scaler"])
        if main:
            log(f"resumed {ck} at step {start}")
    if main:
        out.mkdir(parents=True, exist_ok=True)
        (out / "samples").mkdir(exist_ok=True)
        (out / "config.yaml").write_text(dump(cfg))

    def save(step_done: int) -> None:
        if not main:
            return
        gname = method.main_generator
        ema_on = gname in emas
        ginfo = {**method.gen_specs[gname], "file": f"{gname}_ema.safetensors" if ema_on else f"{gname}.safetensors",
                 **method.generator_info()}
        rev = ginfo.get("reverse")
        if isinstance(rev, dict) and not ema_on:
            rev["file"] = rev["file"].replace("_ema.safetensors", ".safetensors")
        meta = {"method": cfg.method, "step": step_done, "config": cfg.to_dict(), "generator": ginfo,
                "domains": list(cfg.domains),
                "io": {"size": int(cfg.size), "template": cfg.get("template"), "range": "-1,1"},
                "params": method.param_counts(), "time": time.time(),
                "trainer": {"sched": sched.state(), "scaler": scaler.state_dict() if scaler.is_enabled() else None}}
        from safetensors.torch import save_file

        ck.mkdir(parents=True, exist_ok=True)
        st = {**_rng_tensors(dev), **{f"extra.{k}": v.detach().cpu().contiguous()
                                      for k, v in method.extra_state().items()}}
        save_file(st, str(ck / "state.safetensors.tmp"))
        os.replace(ck / "state.safetensors.tmp", ck / "state.safetensors")
        save_checkpoint(ck, modules, method.opts, meta)
        keep = int(cfg.train.get("keep_every") or 0)
        if keep and step_done % keep == 0:
            dst = out / f"step_{step_done:07d}"
            if dst.exists():
                shutil.rmtree(dst)
            shutil.copytree(ck, dst)

    def sample(step_done: int) -> None:
        if not main:
            return
        with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []):
            method.train(False)
            nets = {**method.nets, **{n: e.model for n, e in emas.items()}}
            rows = method.sample_rows(fixed, nets)
            method.train(True)
        save_grid(out / "samples" / f"step_{step_done:07d}.png", make_grid(rows),
                  {"method": cfg.method, "step": str(step_done)})

    sampler = StreamBatchSampler(dataset.sizes, int(cfg.train.batch), seed, start, info.rank, info.world)
    nw = int(cfg.data.get("num_workers") or 0)
    # own generator: creating the iterator must not draw from the global RNG (exact resume)
    loader = DataLoader(dataset, batch_sampler=sampler, num_workers=nw, pin_memory=dev.type == "cuda",
                        persistent_workers=nw > 0, generator=torch.Generator().manual_seed(seed))
    writer = None
    if main:
        try:
            from torch.utils.tensorboard import SummaryWriter

            writer = SummaryWriter(str(out / "tb"))
        except Exception as e:  # tensorboard missing: keep training, say so once
            log(f"tensorboard disabled: {e}")
    jsonl = open(out / "losses.jsonl", "a") if main else None
    pbar = tqdm(total=steps, initial=start, disable=not (main and progress), dynamic_ncols=True,
                desc=f"{cfg.method}", unit="step")
    log_every = max(1, int(cfg.train.log_every))
    window: dict[str, list[float]] = {}
    first = last = None
    t0 = time.time()
    done = start
    it = iter(loader)
    try:
        for step in range(start, steps):
            method.set_step(step)
            sched.before_step(step)
            method.train(True)
            batch = method.to_device(next(it))
            losses = method.train_step(batch)
            scaler.update()
            for n, e in emas.items():  # warm-up: short runs are not dominated by the init weights
                e.decay = min(decay, (1.0 + step) / (10.0 + step))
                e.update(method.nets[n])
            sched.after_step(losses)
            done = step + 1
            if callback is not None:
                callback(done, method, losses)
            bad = [k for k, v in losses.items() if not math.isfinite(v)]
            if bad:
                save(done)
                raise FloatingPointError(f"non-finite loss {bad} at step {done}; checkpoint saved to {ck}")
            for k, v in losses.items():
                window.setdefault(k, []).append(v)
            by_steps = max_steps is not None and done - start >= max_steps
            stop = by_steps or (max_minutes is not None and time.time() - t0 > max_minutes * 60)
            if info.world > 1:  # every rank must stop at the same step
                flag = torch.tensor([1.0 if stop else 0.0], device=dev)
                torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
                stop = bool(flag.item() > 0)
            if done % log_every == 0 or done == steps or stop:
                means = {k: float(np.mean(v)) for k, v in window.items()}
                window = {}
                first = first or means
                last = means
                if main:
                    lr = sched.lr()
                    if writer is not None:
                        for k, v in means.items():
                            writer.add_scalar(f"loss/{k}", v, done)
                        writer.add_scalar("lr", lr, done)
                    jsonl.write(json.dumps({"step": done, "lr": lr, "t": round(time.time() - t0, 2), **means}) + "\n")
                    jsonl.flush()
                    pbar.set_postfix({k: f"{v:.3f}" for k, v in list(means.items())[:6]}, refresh=False)
            pbar.update(1)
            if _every(done, cfg.train.sample_every) or done == steps:
                sample(done)
            if _every(done, cfg.train.ckpt_every) or done == steps or stop:
                save(done)
            if stop:
                if main and done < steps:
                    log(f"stopped at step {done}/{steps} ({'max steps' if by_steps else 'time budget'}); "
                        f"run again to resume")
                if not _every(done, cfg.train.sample_every) and done != steps:
                    sample(done)
                break
    finally:
        pbar.close()
        if writer is not None:
            writer.close()
        if jsonl is not None:
            jsonl.close()
    el = time.time() - t0
    return {"step": done, "steps": steps, "seconds": round(el, 2),
            "sec_per_step": round(el / max(1, done - start), 4), "first": first, "last": last,
            "out_dir": str(out), "checkpoint": str(ck)}
