"""The method contract: what the trainer needs from a GAN recipe (see docs/engine/NEW_METHOD.md).

A method owns its networks (``self.nets``), optimizers (``self.opts``), per-step losses and sample
rows. The trainer owns everything else: data, schedules, EMA, AMP scaling, DDP gradient averaging,
checkpoints, logging.
"""
from __future__ import annotations

import contextlib
import itertools

import torch
from torch import nn

from ...nets import build_generator
from ...nets.blocks import count_params
from ...nets.cyclegan import init_weights
from ..distributed import allreduce_grads

METHODS: dict[str, type["Method"]] = {}


def register_method(cls):
    METHODS[cls.name] = cls
    return cls


def get_method(name: str) -> type["Method"]:
    from . import _load_builtin

    _load_builtin()
    if name not in METHODS:
        from ...errors import ConfigError

        raise ConfigError(f"unknown method {name!r}; known: {', '.join(sorted(METHODS))}, attr-translator")
    return METHODS[name]


class Method:
    name: str = ""
    data_kind: str = "unpaired"  # unpaired | paired | swap (see facegan.train.datasets.build_data)
    defaults: dict = {}  # merged over config.COMMON_DEFAULTS
    ema_nets: tuple[str, ...] = ("G",)  # generators that get an EMA copy
    main_generator: str = "G"  # the module written as the checkpoint's inference generator

    def __init__(self, cfg, device: torch.device | str = "cpu", world: int = 1,
                 amp_dtype: torch.dtype | None = None, scaler=None):
        self.cfg = cfg
        self.device = torch.device(device)
        self.world = world
        self.amp_dtype = amp_dtype
        self.scaler = scaler if scaler is not None else torch.amp.GradScaler("cpu", enabled=False)
        self.nets: dict[str, nn.Module] = {}
        self.opts: dict[str, torch.optim.Optimizer] = {}
        self.gen_specs: dict[str, dict] = {}  # net name -> {"class", "kwargs"}
        self.step_num = 0
        self.build()
        for n, m in self.nets.items():
            m.to(self.device)
            if cfg.get("channels_last"):
                m.to(memory_format=torch.channels_last)
        self.build_optimizers()

    # ---------------------------------------------------------------- to implement
    def build(self) -> None:
        """Create networks with :meth:`add_generator` / :meth:`add_net`."""
        raise NotImplementedError

    def build_optimizers(self) -> None:
        """Default: Adam "G" over every generator, Adam "D" over every other net."""
        gens = [n for n in self.nets if n in self.gen_specs]
        others = [n for n in self.nets if n not in self.gen_specs]
        self.adam("G", itertools.chain(*(self.nets[n].parameters() for n in gens)))
        if others:
            self.adam("D", itertools.chain(*(self.nets[n].parameters() for n in others)),
                      lr=self.cfg.train.get("lr_D") or self.cfg.train.lr)

    def train_step(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        """One optimisation step of every network; returns scalar losses for logging."""
        raise NotImplementedError

    def sample_rows(self, batch: dict[str, torch.Tensor], nets: dict[str, nn.Module]) -> list[tuple[str, torch.Tensor]]:
        """Rows of the sample grid: (label, images in [-1, 1]). ``nets`` maps names to the modules to
        use (the EMA generators where there are some)."""
        raise NotImplementedError

    def generator_info(self) -> dict:
        """Extra keys for the checkpoint's ``generator`` entry (e.g. direction, call arguments)."""
        return {}

    def set_step(self, step: int) -> None:
        """Called before every step (schedules that change the networks, e.g. progressive growth)."""
        self.step_num = step

    def extra_state(self) -> dict[str, torch.Tensor]:
        """Tensors to checkpoint besides weights/optimizers (e.g. image pools)."""
        return {}

    def load_extra_state(self, state: dict[str, torch.Tensor]) -> None:
        pass

    # ---------------------------------------------------------------- helpers
    def add_generator(self, name: str, cls_name: str, kwargs: dict, init: bool = True) -> nn.Module:
        net = build_generator(cls_name, kwargs)
        if init:
            init_weights(net, self.cfg.model.get("init", "normal"), self.cfg.model.get("init_gain", 0.02))
        self.nets[name] = net
        self.gen_specs[name] = {"class": cls_name, "kwargs": dict(kwargs)}
        return net

    def add_net(self, name: str, net: nn.Module, init: bool = True) -> nn.Module:
        if init:
            init_weights(net, self.cfg.model.get("init", "normal"), self.cfg.model.get("init_gain", 0.02))
        self.nets[name] = net
        return net

    def adam(self, name: str, params, lr: float | None = None) -> torch.optim.Optimizer:
        t = self.cfg.train
        lr = float(lr if lr is not None else t.lr)
        opt = torch.optim.Adam(list(params), lr=lr, betas=(float(t.beta1), float(t.beta2)),
                               weight_decay=float(t.get("weight_decay", 0.0)))
        for g in opt.param_groups:
            g["initial_lr"] = lr
        self.opts[name] = opt
        return opt

    def autocast(self):
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def step(self, loss: torch.Tensor, opt_name: str, frozen=()) -> None:
        """zero_grad -> (scaled) backward -> DDP gradient average -> optional clip -> optimizer step.
        Parameters in ``frozen`` get no update this step (their gradients are dropped)."""
        opt = self.opts[opt_name]
        opt.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        for p in frozen:
            p.grad = None
        params = [p for g in opt.param_groups for p in g["params"]]
        allreduce_grads(params, self.world)
        clip = float(self.cfg.train.get("grad_clip") or 0)
        if clip > 0:
            self.scaler.unscale_(opt)
            torch.nn.utils.clip_grad_norm_([p for p in params if p.grad is not None], clip)
        self.scaler.step(opt)

    @staticmethod
    def requires_grad(nets, flag: bool) -> None:
        for n in nets if isinstance(nets, (list, tuple)) else [nets]:
            for p in n.parameters():
                p.requires_grad_(flag)

    def to_device(self, batch: dict) -> dict:
        mf = torch.channels_last if self.cfg.get("channels_last") else torch.contiguous_format
        return {k: v.to(self.device, non_blocking=True, memory_format=mf) if torch.is_tensor(v) else v
                for k, v in batch.items()}

    def param_counts(self) -> dict[str, int]:
        return {n: count_params(m) for n, m in self.nets.items()}

    def train(self, flag: bool = True) -> None:
        for m in self.nets.values():
            m.train(flag)
