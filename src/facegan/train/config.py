"""Training configs: YAML files with inheritance, named presets, ``--set key=value`` overrides and
validation against each method's defaults.

- ``base:`` (or ``inherit:``) names one or more configs this one extends: a path relative to the
  file, or a preset name. Dicts merge recursively; other values (and data source specs) replace.
- Presets live in ``facegan/train/presets/<name>.yaml`` (``facegan train --list-presets``).
- ``--set model.ngf=64 --set data.a.limit=100``: dotted key, YAML value.
- Unknown keys are errors (typos do not silently fall back to defaults).
"""
from __future__ import annotations

import copy
from pathlib import Path

import yaml

from ..errors import ConfigError, InputNotFoundError

PRESET_DIR = Path(__file__).with_name("presets")
BASE_KEYS = ("base", "inherit")
# values replaced whole on merge (source specs may be a string or a dict of another shape)
ATOMIC = {"data.a", "data.b", "data.ab", "data.source", "data.sample_a", "data.sample_b", "data.sample_source",
          "data.warp", "domains"}
# keys under these paths are free-form
FREE = ATOMIC | {"data.sample_a", "data.sample_b"}

COMMON_DEFAULTS: dict = {
    "method": None,
    "name": None,  # run name; default: the config file's stem
    "seed": 0,
    "out_dir": None,  # default runs/<name>
    "size": 64,
    "template": None,  # crop template the training images follow (written to the checkpoint's io)
    "domains": ["A", "B"],
    "device": "auto",  # auto | cpu | cuda | cuda:N
    "amp": "auto",  # auto (on for CUDA) | off | bf16 | fp16
    "threads": 0,  # CPU threads; 0 = all cores
    "channels_last": False,
    "data": {
        "a": None, "b": None, "ab": None, "source": None,
        "sample_a": None, "sample_b": None, "sample_source": None, "sample_n": 4,
        "degrade": "grayscale", "direction": "AtoB",
        "load_size": None, "flip": True, "jitter": 0.0, "color": 0.0,
        "align": False, "detector": "dlib-hog", "cache_dir": "cache/aligned", "on_miss": "drop",
        "preload": "auto", "num_workers": 0,
        "warp": None,
    },
    "model": {"init": "normal", "init_gain": 0.02},
    "loss": {},
    "train": {
        "steps": 1000, "batch": 4, "lr": 2e-4, "lr_D": None, "beta1": 0.5, "beta2": 0.999, "weight_decay": 0.0,
        "lr_policy": "linear",  # constant | linear | plateau
        "decay_start": 0.5,  # linear: fraction of steps at constant lr before the linear decay to 0
        "plateau_window": 100, "plateau_factor": 0.5, "plateau_patience": 3, "plateau_monitor": "G",
        "ema": 0.999,  # 0 disables the EMA generator
        "ckpt_every": 500, "sample_every": 100, "log_every": 10, "keep_every": 0,
        "resume": True, "grad_clip": 0.0,
    },
}


class Cfg(dict):
    """dict with attribute access (``cfg.train.lr``); nested dicts are Cfg too."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        for k, v in self.items():
            if isinstance(v, dict) and not isinstance(v, Cfg):
                self[k] = Cfg(v)

    def __getattr__(self, k):
        try:
            return self[k]
        except KeyError:
            raise AttributeError(k) from None

    def to_dict(self) -> dict:
        return {k: v.to_dict() if isinstance(v, Cfg) else v for k, v in self.items()}


def list_presets() -> list[str]:
    return sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))


def find_config(ref: str | Path, relative_to: Path | None = None) -> Path:
    ref = str(ref)
    cands = []
    if relative_to is not None and not Path(ref).is_absolute():
        cands.append(relative_to.parent / ref)
    cands += [Path(ref), PRESET_DIR / ref, PRESET_DIR / f"{ref}.yaml"]
    for c in cands:
        if c.is_file():
            return c
    raise InputNotFoundError(f"config or preset not found: {ref} (presets: {', '.join(list_presets())})")


def deep_merge(a: dict, b: dict, prefix: str = "") -> dict:
    out = copy.deepcopy(a)
    for k, v in b.items():
        path = f"{prefix}{k}"
        if isinstance(v, dict) and isinstance(out.get(k), dict) and path not in ATOMIC:
            out[k] = deep_merge(out[k], v, path + ".")
        else:
            out[k] = copy.deepcopy(v)
    return out


def load_raw(ref: str | Path, relative_to: Path | None = None, _stack: tuple = ()) -> dict:
    """Reads a config and its bases (recursively), without defaults."""
    path = find_config(ref, relative_to).resolve()
    if path in _stack:
        raise ConfigError(f"config inheritance cycle: {' -> '.join(str(p) for p in (*_stack, path))}")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: invalid YAML: {e}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a config must be a mapping")
    bases = [data.pop(k) for k in BASE_KEYS if k in data]
    flat = []
    for b in bases:
        flat += b if isinstance(b, list) else [b]
    out: dict = {}
    for b in flat:
        out = deep_merge(out, load_raw(b, path, (*_stack, path)))
    out = deep_merge(out, data)
    if "name" not in data:  # the most derived file names the run
        out["name"] = path.stem
    return out


def parse_set(items) -> list[tuple[list[str], object]]:
    out = []
    for it in items or ():
        if "=" not in it:
            raise ConfigError(f"--set expects key=value, got {it!r}")
        k, v = it.split("=", 1)
        try:
            val = yaml.safe_load(v) if v != "" else None
        except yaml.YAMLError:
            val = v
        val = _number(val)
        out.append((k.strip().split("."), val))
    return out


def apply_set(cfg: dict, items) -> dict:
    cfg = copy.deepcopy(cfg)
    for keys, val in parse_set(items):
        d = cfg
        for k in keys[:-1]:
            if not isinstance(d.get(k), dict):
                d[k] = {}
            d = d[k]
        d[keys[-1]] = val
    return cfg


def _number(v):
    """YAML 1.1 reads ``1e-3`` as a string; numbers written that way become floats."""
    if isinstance(v, str):
        try:
            return float(v) if any(c in v for c in ".eE") else int(v)
        except ValueError:
            return v
    return v


def _coerce(cfg: dict, defaults: dict) -> None:
    """Where a default is a number, a string value that parses as a number becomes one."""
    for k, v in cfg.items():
        d = defaults.get(k)
        if isinstance(v, dict) and isinstance(d, dict):
            _coerce(v, d)
        elif isinstance(v, str) and isinstance(d, (int, float)) and not isinstance(d, bool):
            cfg[k] = _number(v)


def _validate(user: dict, defaults: dict, prefix: str = "") -> None:
    for k, v in user.items():
        path = f"{prefix}{k}"
        if k not in defaults:
            known = ", ".join(sorted(defaults))
            raise ConfigError(f"unknown config key {path!r} (known at this level: {known})")
        if path in FREE:
            continue
        if isinstance(v, dict) and isinstance(defaults[k], dict):
            _validate(v, defaults[k], path + ".")


def method_defaults(method: str) -> dict:
    from .methods import get_method

    return deep_merge(COMMON_DEFAULTS, get_method(method).defaults)


def resolve(raw: dict) -> Cfg:
    """Fills defaults for ``raw['method']`` and validates. ``attr-translator`` configs pass through."""
    method = raw.get("method")
    if not method:
        raise ConfigError("config has no 'method' (e.g. method: cyclegan)")
    if method == "attr-translator":
        return Cfg(raw)
    defaults = method_defaults(method)
    _validate(raw, defaults)
    cfg = deep_merge(defaults, raw)
    _coerce(cfg, defaults)
    if not cfg.get("out_dir"):
        cfg["out_dir"] = f"runs/{cfg.get('name') or method}"
    return Cfg(cfg)


def load_config(ref: str | Path, overrides=(), out_dir: str | None = None) -> Cfg:
    raw = apply_set(load_raw(ref), overrides)
    if out_dir:
        raw["out_dir"] = out_dir
    return resolve(raw)


def dump(cfg: dict) -> str:
    plain = cfg.to_dict() if isinstance(cfg, Cfg) else cfg
    return yaml.safe_dump(plain, sort_keys=False, default_flow_style=None, width=110)
