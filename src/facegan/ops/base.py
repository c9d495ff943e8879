"""The operation contract.

An operation transforms one RGB photo (uint8, H x W x 3) and reports per face what it did.
It declares its options (so front ends can build forms and flags) and never parses CLI arguments
or HTTP requests itself. Ops register themselves with ``@register_op``; modules listed in
``_BUILTIN`` are imported on first lookup.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from ..errors import ConfigError


@dataclass(frozen=True)
class OpOption:
    name: str
    type: str = "str"  # "str" | "int" | "float" | "bool"
    default: Any = None
    choices: tuple | None = None
    help: str = ""
    bounds: tuple | None = None  # (low, high) inclusive, for int/float options; checked when parsed


    def parse(self, value: Any) -> Any:
        if value is None:
            return self.default
        try:
            if self.type == "int":
                value = int(value)
            elif self.type == "float":
                value = float(value)
            elif self.type == "bool":
                value = value if isinstance(value, bool) else str(value).lower() in ("1", "true", "yes", "on")
            else:
                value = str(value)
        except (TypeError, ValueError) as e:
            raise ConfigError(f"option {self.name!r}: expected {self.type}, got {value!r}") from e
        if self.bounds is not None and not self.bounds[0] <= value <= self.bounds[1]:
            raise ConfigError(f"option {self.name!r}: {value!r} is outside {self.bounds[0]}-{self.bounds[1]}")
        if self.choices is not None and value not in self.choices:
            raise ConfigError(f"option {self.name!r}: {value!r} is not one of {', '.join(map(str, self.choices))}")
        return value


@dataclass
class OpResult:
    image: np.ndarray  # RGB uint8, same size as the input
    faces: list[dict] = field(default_factory=list)  # per-face report rows
    synthetic: bool = True  # whether the output contains generated pixels (metadata tagging)
    info: dict = field(default_factory=dict)


@dataclass
class Operation:
    name: str  # CLI/API name, e.g. "swap-gender"
    title: str  # human label for the web page
    description: str
    run: Callable[..., OpResult]  # run(rgb: np.ndarray, **options) -> OpResult
    options: tuple[OpOption, ...] = ()
    examples: tuple[str, ...] = ()
    available: Callable[[], bool] = lambda: True  # e.g. False when its model is not installed
    check: Callable[[dict], None] | None = None  # raises ConfigError for option combinations no single option shows
    # videos (facegan.video): None = refused; "frames" = run on every frame with the tracked faces passed as
    # run(..., faces=[Face]); "tracked" = also decides once per face track (run's info["pins"], given back in
    # each face's extra["pin"]) and takes run(..., verify=bool) for the frames it checks
    video: str | None = None
    # "tracked" ops: repin(pin, verified rows of other frames, options) -> ("pass", None) | ("stronger", pin) |
    # ("exhausted", None): a track's decision checked on several of its frames, made stronger where one fails
    repin: Callable[[dict, list, dict], tuple] | None = None

    def parse_options(self, raw: dict | None) -> dict:
        raw = dict(raw or {})
        known = {o.name for o in self.options}
        unknown = set(raw) - known
        if unknown:
            raise ConfigError(f"{self.name}: unknown option(s) {', '.join(sorted(unknown))}; "
                              f"known: {', '.join(sorted(known)) or 'none'}")
        parsed = {o.name: o.parse(raw.get(o.name)) for o in self.options}
        if self.check is not None:
            self.check(parsed)
        return parsed

    def __call__(self, rgb: np.ndarray, **options) -> OpResult:
        return self.run(rgb, **self.parse_options(options))

    def describe(self) -> dict:
        return {"name": self.name, "title": self.title, "description": self.description,
                "options": [{"name": o.name, "type": o.type, "default": o.default,
                             "choices": list(o.choices) if o.choices else None, "help": o.help,
                             "bounds": list(o.bounds) if o.bounds else None}
                            for o in self.options], "available": bool(self.available())}


def photo_seed(seed: int, key: str) -> int:
    """A photo's own seed from a run's ``seed`` and a stable key (e.g. its relative output path): a
    seeded batch is reproducible and resumable, yet its photos do not all get the same random draws."""
    import zlib

    return zlib.crc32(f"{int(seed)}:{key}".encode()) & 0x7FFFFFFF


# What an output file's own metadata may say about the job (io.write_image's info): it travels with the image
# to whoever receives it. Not the random draws' seed (with it and the file name a receiver can redraw
# anonymize's reshape and undo part of it) and nothing the judges read on the original face (its age, its gender
# probabilities): those stay in the operator's report.json.
SECRET_OPTIONS = ("seed",)


def embeddable(options: dict, faces: list[dict] | None = None) -> dict:
    """The job's options and per-face rows as an output's metadata may carry them (see ``SECRET_OPTIONS``)."""
    out = {k: v for k, v in options.items() if k not in SECRET_OPTIONS}
    if faces is None:
        return out
    rows = [{k: v for k, v in r.items() if "_before" not in k} for r in faces]
    return {"options": out, "faces": rows}


_REGISTRY: dict[str, Operation] = {}
# modules that define built-in ops; imported lazily so importing facegan stays cheap
_BUILTIN = ["facegan.ops.baselines", "facegan.ops.swap_gender"]
_loaded = False


def register_op(op: Operation) -> Operation:
    _REGISTRY[op.name] = op
    return op


def _load_builtin():
    global _loaded
    if _loaded:
        return
    _loaded = True
    for mod in _BUILTIN:
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as e:  # an op whose module is not there yet is simply absent
            if e.name != mod:
                raise


def list_ops(available_only: bool = False) -> list[Operation]:
    _load_builtin()
    ops = sorted(_REGISTRY.values(), key=lambda o: o.name)
    return [o for o in ops if o.available()] if available_only else ops


def get_op(name: str) -> Operation:
    _load_builtin()
    if name not in _REGISTRY:
        raise ConfigError(f"unknown operation {name!r}; known: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]
