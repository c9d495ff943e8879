"""Engine benchmarks: inference latency (eager PyTorch vs ONNX Runtime), training throughput per
method, and a side-by-side timing of a reference ResNet generator implementation against ours.

    nice -n 10 python benchmarks/bench_engine.py            # full run, writes benchmarks/results/engine.{json,md}
    python benchmarks/bench_engine.py --quick --out /tmp/b   # smoke run (64 px, 1 repeat)

What is measured
* Inference: batch 1, ``torch.inference_mode`` eager PyTorch vs ONNX Runtime (CPUExecutionProvider,
  graph exported by ``facegan.export.onnx.export_onnx`` with static shapes, legacy exporter), at
  64/128/256 px. PyTorch and ORT runs are interleaved so drifting background load hits both alike.
  The ONNX output is checked against PyTorch (max abs diff reported).
* Training: images/s of one ``Method.train_step`` (every G and D update of the method, batch 4, random
  tensors in [-1, 1]; data loading, EMA and logging excluded) per engine preset, at 64/128 px and 256
  px when the 128 px step predicts it fits the time budget. ``attr-translator`` is the lead's trainer
  step re-created here (same losses and networks as ``facegan.train.attr_translator``).
* Reference: ``vintagify==0.1.2`` (MIT, PyPI) ships its own CycleGAN ``ResnetGenerator`` (ResNet-9,
  ngf 64, affine InstanceNorm) and ``Discriminator``. Its ``generator.py``/``discriminator.py`` are
  loaded by file path from the installed package (its ``__init__`` needs torchvision). Our
  ``ResnetGenerator(norm="instance-affine")`` computes exactly the same function (checked below), so
  the generator ratio compares two implementations of one architecture. vintagify's discriminator is
  NOT our NLayerDiscriminator (4 stride-2 convs + sigmoid vs 3 stride-2 + 1 stride-1), so D timings
  are listed side by side without a "same architecture" claim. The reference pytorch-CycleGAN-and-
  pix2pix definitions themselves are not vendored (facegan.nets.cyclegan re-creates their layout).
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]


# --------------------------------------------------------------------------------------- utils
def machine_info(threads: int) -> dict:
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import onnxruntime as ort

    mem = None
    try:
        mem = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2 ** 30, 1)
    except (ValueError, OSError):
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_gib": mem, "python": platform.python_version(),
            "torch": torch.__version__, "onnxruntime": ort.__version__, "threads": threads,
            "platform": platform.platform(), "loadavg_start": list(os.getloadavg()),
            "nice": os.nice(0)}


def timed(fn, *, warmup: int = 1, min_reps: int = 3, max_reps: int = 20, min_time: float = 2.0) -> list[float]:
    for _ in range(warmup):
        fn()
    ts: list[float] = []
    t_all = time.perf_counter()
    while len(ts) < max_reps and (len(ts) < min_reps or time.perf_counter() - t_all < min_time):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return ts


def interleaved(fns: dict, *, warmup=1, min_reps=3, max_reps=20, min_time=2.0) -> dict[str, list[float]]:
    """Times several callables alternately (a, b, a, b, ...) so load drift affects them alike."""
    for f in fns.values():
        for _ in range(warmup):
            f()
    out = {k: [] for k in fns}
    t_all = time.perf_counter()
    while True:
        for k, f in fns.items():
            t = time.perf_counter()
            f()
            out[k].append(time.perf_counter() - t)
        n = len(next(iter(out.values())))
        if n >= max_reps or (n >= min_reps and time.perf_counter() - t_all >= min_time * len(fns)):
            return out


def med_ms(ts: list[float]) -> float:
    return round(statistics.median(ts) * 1000, 2)


def spread(ts: list[float]) -> dict:
    return {"median_ms": med_ms(ts), "min_ms": round(min(ts) * 1000, 2), "max_ms": round(max(ts) * 1000, 2),
            "n": len(ts)}


def _rand(n, size, c=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, c, size, size, generator=g) * 2 - 1


def n_params(m) -> int:
    return sum(p.numel() for p in m.parameters())


# ------------------------------------------------------------------------------ generators
def _method(preset: str, size: int):
    from facegan.train.config import load_config
    from facegan.train.methods import get_method

    cfg = load_config(preset, overrides=[f"size={size}", "threads=1"])
    return get_method(cfg.method)(cfg, device="cpu"), cfg


def _engine_generator(preset: str, size: int):
    from facegan.nets.loading import BoundGenerator

    m, cfg = _method(preset, size)
    g = m.nets[m.main_generator].eval()
    call = m.generator_info().get("call")
    desc = f"{m.gen_specs[m.main_generator]['class']} {m.gen_specs[m.main_generator]['kwargs']}"
    return (BoundGenerator(g, call).eval() if call else g), desc


def inference_models(size: int):
    """(name, description, module) for every generator at ``size``."""
    from facegan.nets.cyclegan import ResnetGenerator
    from facegan.nets.loading import ConditionedGenerator
    from facegan.nets.translator import ResidualTranslator
    from facegan.nets.unet import UnetGenerator

    out = [("resnet9-ngf64", "reference resnet_9blocks: ResnetGenerator(ngf=64, n_blocks=9)",
            lambda: ResnetGenerator(ngf=64, n_blocks=9)),
           ("unet-ngf64", "reference unet_<px>: UnetGenerator(num_downs=log2(px), ngf=64, batch norm)",
            lambda: UnetGenerator(3, 3, int(np.log2(size)), ngf=64, norm="batch")),
           ("residual-translator", "attr-translator: ResidualTranslator(2, ngf=32, n_blocks=6), target fixed",
            lambda: ConditionedGenerator(ResidualTranslator(2, 32, 6), ["male", "female"], "female"))]
    for preset in ("cyclegan", "cyclegan-unet", "unit", "pix2pixhd", "twingan", "faceswap"):
        out.append((f"preset:{preset}", None, preset))
    for name, desc, make in out:
        if isinstance(make, str):
            net, d = _engine_generator(make, size)
            yield name, f"{make} preset: {d}", net
        else:
            yield name, desc, make()


def bench_inference(sizes, args, log) -> list[dict]:
    import onnxruntime as ort

    from facegan.export.onnx import export_onnx

    rows = []
    tmpdir = Path(tempfile.mkdtemp(prefix="bench-onnx-"))
    for size in sizes:
        for name, desc, net in inference_models(size):
            net.eval()
            x = _rand(1, size)
            row = {"model": name, "desc": desc, "size": size, "params_M": round(n_params(net) / 1e6, 2)}
            try:
                path = export_onnx(net, tmpdir / f"{name.replace(':', '_')}_{size}.onnx", size=size)
                so = ort.SessionOptions()
                so.intra_op_num_threads = args.threads
                so.inter_op_num_threads = 1
                so.log_severity_level = 3
                sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
                xn = x.numpy()
                with torch.inference_mode():
                    ref = net(x).numpy()
                row["onnx_max_abs_diff"] = float(np.abs(sess.run(None, {"input": xn})[0] - ref).max())

                def run_torch():
                    with torch.inference_mode():
                        net(x)

                ts = interleaved({"torch": run_torch, "ort": lambda: sess.run(None, {"input": xn})},
                                 min_reps=args.reps, max_reps=max(args.reps, 20), min_time=args.min_time)
                row["torch"] = spread(ts["torch"])
                row["ort"] = spread(ts["ort"])
                row["speedup_ort"] = round(row["torch"]["median_ms"] / row["ort"]["median_ms"], 2)
                path.unlink(missing_ok=True)
            except Exception as e:  # report, keep going
                row["error"] = f"{type(e).__name__}: {str(e)[:200]}"
            log(f"infer {name:22s} {size:4d}px " + (f"torch {row['torch']['median_ms']:9.1f} ms  ort "
                f"{row['ort']['median_ms']:9.1f} ms  x{row['speedup_ort']}" if "torch" in row else row.get("error", "")))
            rows.append(row)
    return rows


# ---------------------------------------------------------------------------------- training
class _AttrTranslatorStep:
    """The lead's attr-translator step (facegan.train.attr_translator), with its networks and losses."""

    def __init__(self, size: int):
        from facegan.nets.classifier import SmallCNN
        from facegan.nets.cyclegan import init_weights
        from facegan.nets.translator import DomainPatchDiscriminator, ResidualTranslator

        self.G = init_weights(ResidualTranslator(2, 32, 6))
        self.D = init_weights(DomainPatchDiscriminator(2, 32))
        self.C = SmallCNN(2).eval().requires_grad_(False)
        self.oG = torch.optim.Adam(self.G.parameters(), 2e-4, betas=(0.5, 0.999))
        self.oD = torch.optim.Adam(self.D.parameters(), 2e-4, betas=(0.5, 0.999))

    def train_step(self, batch):
        x = batch["A"]
        y = torch.arange(len(x)) % 2
        t = 1 - y
        fake = self.G(x, t)
        d_real, d_fake = self.D(x, y), self.D(fake.detach(), t)
        loss_d = 0.5 * (F.mse_loss(d_real, torch.ones_like(d_real)) + F.mse_loss(d_fake, torch.zeros_like(d_fake)))
        self.oD.zero_grad(set_to_none=True)
        loss_d.backward()
        self.oD.step()
        d_out = self.D(fake, t)
        rec = self.G(fake, y)
        logits = self.C(F.interpolate(fake, size=64, mode="bilinear", antialias=True, align_corners=False))
        loss_g = (F.mse_loss(d_out, torch.ones_like(d_out)) + 10 * F.l1_loss(rec, x)
                  + 3 * F.cross_entropy(logits, t))
        self.oG.zero_grad(set_to_none=True)
        loss_g.backward()
        self.oG.step()
        return {}

    def param_counts(self):
        return {"G": n_params(self.G), "D": n_params(self.D)}


TRAIN_PRESETS = ("cyclegan", "cyclegan-unet", "pix2pix", "pix2pixhd", "unit", "twingan", "faceswap", "attr-translator")


def bench_training(sizes, args, log) -> list[dict]:
    rows = []
    last128: dict[str, float] = {}
    for size in sizes:
        for preset in TRAIN_PRESETS:
            row = {"method": preset, "size": size, "batch": args.batch}
            if size >= 256 and preset in last128:
                predicted = last128[preset] * 4 * (1 + args.train_reps)
                if predicted > args.train_budget_s:
                    row["skipped"] = (f"predicted {predicted:.0f} s for warm-up + {args.train_reps} steps "
                                      f"(4x the 128 px step) > budget {args.train_budget_s:.0f} s")
                    log(f"train {preset:16s} {size:4d}px skipped: {row['skipped']}")
                    rows.append(row)
                    continue
            try:
                torch.manual_seed(0)
                if preset == "attr-translator":
                    m = _AttrTranslatorStep(size)
                    row["params"] = m.param_counts()
                else:
                    m, cfg = _method(preset, size)
                    m.train(True)
                    row["params"] = {k: n_params(v) for k, v in m.nets.items()}
                b = args.batch
                batch = {k: _rand(b, size, seed=i) for i, k in enumerate(("A", "B", "A_in", "B_in"))}
                ts = timed(lambda: m.train_step(batch), warmup=1, min_reps=args.train_reps,
                           max_reps=args.train_reps, min_time=0)
                row["step"] = spread(ts)
                row["images_per_s"] = round(b / statistics.median(ts), 2)
                if size == 128:
                    last128[preset] = statistics.median(ts)
            except Exception as e:
                row["error"] = f"{type(e).__name__}: {str(e)[:200]}"
            log(f"train {preset:16s} {size:4d}px " + (f"{row['step']['median_ms'] / 1000:7.2f} s/step  "
                f"{row['images_per_s']:6.2f} img/s" if "step" in row else row.get("error", "")))
            rows.append(row)
    return rows


# --------------------------------------------------------------------------------- reference
def _load_by_path(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def bench_reference(sizes, args, log) -> dict:
    spec = importlib.util.find_spec("vintagify")
    if spec is None or spec.origin is None:
        return {"skipped": "vintagify not installed (pip install --no-deps vintagify==0.1.2)"}
    root = Path(spec.origin).parent
    vg = _load_by_path("_vintagify_generator", root / "generator.py")
    vd = _load_by_path("_vintagify_discriminator", root / "discriminator.py")
    from facegan.nets.cyclegan import NLayerDiscriminator
    from facegan.nets.loading import build_resnet

    torch.manual_seed(0)
    ref_g = vg.ResnetGenerator().eval()
    ours_g = build_resnet({"ngf": 64, "n_blocks": 9, "norm": "instance-affine"}).eval()
    sd = {k.replace(".block.", ".conv_block."): v for k, v in ref_g.state_dict().items()}
    ours_g.load_state_dict(sd)
    x = _rand(1, 64)
    with torch.inference_mode():
        same = float((ref_g(x) - ours_g(x)).abs().max())
    out = {"reference": "vintagify 0.1.2 generator.py ResnetGenerator / discriminator.py Discriminator (MIT, PyPI)",
           "ours": "facegan.nets.cyclegan.ResnetGenerator(ngf=64, n_blocks=9, norm=instance-affine) / "
                   "NLayerDiscriminator(ndf=64, n_layers=3, instance)",
           "generator_outputs_max_abs_diff": same, "generator_params": [n_params(ref_g), n_params(ours_g)],
           "inference": [], "train_G": [], "train_D": []}
    for size in sizes:
        xi = _rand(1, size)

        def inf(net):
            def f():
                with torch.inference_mode():
                    net(xi)
            return f

        ts = interleaved({"reference": inf(ref_g), "ours": inf(ours_g)}, min_reps=args.reps,
                         max_reps=max(args.reps, 20), min_time=args.min_time)
        r = {"size": size, "reference": spread(ts["reference"]), "ours": spread(ts["ours"])}
        r["ratio_ref_over_ours"] = round(r["reference"]["median_ms"] / r["ours"]["median_ms"], 3)
        out["inference"].append(r)
        log(f"ref   G infer {size:4d}px reference {r['reference']['median_ms']:8.1f} ms  ours "
            f"{r['ours']['median_ms']:8.1f} ms  ratio {r['ratio_ref_over_ours']}")
    for size in [s for s in sizes if s <= args.ref_train_max]:
        xb, yb = _rand(args.batch, size, seed=1), _rand(args.batch, size, seed=2)
        for kind, a, b in (("train_G", vg.ResnetGenerator(), build_resnet({"ngf": 64, "n_blocks": 9,
                                                                           "norm": "instance-affine"})),
                           ("train_D", vd.Discriminator(), NLayerDiscriminator(3, 64, 3, "instance"))):
            fns = {}
            for label, net in (("reference", a.train()), ("ours", b.train())):
                opt = torch.optim.Adam(net.parameters(), 2e-4, betas=(0.5, 0.999))

                def step(net=net, opt=opt):
                    out_ = net(xb)
                    loss = F.l1_loss(out_, yb) if kind == "train_G" else out_.mean()
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                fns[label] = step
            ts = interleaved(fns, min_reps=args.train_reps, max_reps=args.train_reps, min_time=0)
            r = {"size": size, "batch": args.batch, "reference": spread(ts["reference"]), "ours": spread(ts["ours"])}
            r["ratio_ref_over_ours"] = round(r["reference"]["median_ms"] / r["ours"]["median_ms"], 3)
            out[kind].append(r)
            log(f"ref   {kind} {size:4d}px reference {r['reference']['median_ms']:8.1f} ms  ours "
                f"{r['ours']['median_ms']:8.1f} ms  ratio {r['ratio_ref_over_ours']}")
    return out


# ------------------------------------------------------------------------------------ report
def to_markdown(res: dict) -> str:
    m = res["machine"]
    lines = ["# Engine benchmarks", "",
             f"Measured {res['date']} on {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB; Python {m['python']}, "
             f"torch {m['torch']}, onnxruntime {m['onnxruntime']}; {m['threads']} intra-op thread(s) for both "
             f"runtimes; process nice {m['nice']}.",
             "",
             f"**Shared CPU:** {res['note']} Load average at start {m['loadavg_start']}, at end "
             f"{res.get('loadavg_end')}. Absolute numbers are therefore pessimistic and noisy; ratios measured "
             "with interleaved runs (PyTorch vs ORT, reference vs ours) are the more reliable figures.", "",
             "Reproduce: `nice -n 10 python benchmarks/bench_engine.py` (see the script's docstring for what is "
             "timed).", "",
             "## Inference latency, batch 1 (median ms)", "",
             "| generator | params (M) | px | PyTorch eager | ONNX Runtime | ORT speed-up | max abs diff |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for r in res["inference"]:
        if "torch" in r:
            lines.append(f"| {r['model']} | {r['params_M']} | {r['size']} | {r['torch']['median_ms']:.1f} | "
                         f"{r['ort']['median_ms']:.1f} | {r['speedup_ort']:.2f}x | {r['onnx_max_abs_diff']:.1e} |")
        else:
            lines.append(f"| {r['model']} | {r['params_M']} | {r['size']} | error: {r.get('error')} | | | |")
    lines += ["", "Generators (kwargs as built at the first size; the U-Net depth and the face-swap autoencoder "
              "are built for each size):", ""]
    seen = set()
    for r in res["inference"]:
        if r["model"] not in seen and r.get("desc"):
            seen.add(r["model"])
            lines.append(f"- `{r['model']}`: {r['desc']}")
    lines += ["", f"## Training throughput, batch {res['args']['batch']} (one `train_step`: every G and D update)", "",
              f"images/s = batch / median step time, with batch = {res['args']['batch']} images per domain "
              "(unpaired methods and the face-swap autoencoder process that many images of each domain per step; "
              "pix2pix/pix2pixHD that many pairs).", "",
              "| method | px | s/step (median) | images/s | generator params (M, all non-D nets) |", "|---|---:|---:|---:|---:|"]
    for r in res["training"]:
        gp = ""
        if r.get("params"):
            gp = round(sum(v for k, v in r["params"].items() if not k.startswith("D")) / 1e6, 2)
        if "step" in r:
            lines.append(f"| {r['method']} | {r['size']} | {r['step']['median_ms'] / 1000:.2f} | "
                         f"{r['images_per_s']:.2f} | {gp} |")
        elif "skipped" in r:
            lines.append(f"| {r['method']} | {r['size']} | skipped: {r['skipped']} | | |")
        else:
            lines.append(f"| {r['method']} | {r['size']} | error: {r.get('error')} | | |")
    ref = res.get("reference") or {}
    lines += ["", "## Reference implementation side by side", ""]
    if "skipped" in ref:
        lines.append(ref["skipped"])
    elif ref:
        lines += [f"Reference: {ref['reference']}. Ours: {ref['ours']}.", "",
                  f"The two generators compute the same function: with vintagify's weights copied into ours the "
                  f"outputs differ by at most {ref['generator_outputs_max_abs_diff']:.1e}. The discriminators are "
                  "different architectures (vintagify: 4 stride-2 convs + sigmoid; ours: PatchGAN 70x70), so "
                  "their row is informative only.", "",
                  "| what | px | batch | reference (ms) | ours (ms) | reference / ours |", "|---|---:|---:|---:|---:|---:|"]
        for kind, label in (("inference", "G inference"), ("train_G", "G train step (L1 + Adam)"),
                            ("train_D", "D train step (different archs)")):
            for r in ref.get(kind, []):
                lines.append(f"| {label} | {r['size']} | {r.get('batch', 1)} | {r['reference']['median_ms']:.1f} | "
                             f"{r['ours']['median_ms']:.1f} | {r['ratio_ref_over_ours']:.2f} |")
    if res.get("notes"):
        lines += ["", "## Notes", ""] + [f"- {n}" for n in res["notes"]]
    return "\n".join(lines) + "\n"


def rewrite_markdown(out: Path) -> None:
    """Regenerates engine.md from engine.json (after editing the table layout)."""
    res = json.loads((out / "engine.json").read_text())
    (out / "engine.md").write_text(to_markdown(res))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="64,128,256")
    ap.add_argument("--train-sizes", default="64,128,256")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--reps", type=int, default=3, help="minimum timed inference runs")
    ap.add_argument("--min-time", type=float, default=1.5, help="seconds of timed runs per runtime and case")
    ap.add_argument("--train-reps", type=int, default=2)
    ap.add_argument("--train-budget-s", type=float, default=90.0,
                    help="skip a 256 px training measurement predicted to take longer")
    ap.add_argument("--ref-train-max", type=int, default=128, help="largest size for the reference train steps")
    ap.add_argument("--skip", default="", help="comma list of parts to skip: inference,training,reference")
    ap.add_argument("--quick", action="store_true", help="64 px only, 1 repeat (smoke test)")
    ap.add_argument("--markdown-only", action="store_true", help="rewrite engine.md from engine.json in --out")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    ap.add_argument("--note", default="a GAN training process (the project's gender translator, 2 threads) "
                                      "ran on the same 2 cores during the whole benchmark.")
    args = ap.parse_args(argv)
    if args.markdown_only:
        rewrite_markdown(Path(args.out))
        return 0
    if args.quick:
        args.sizes = args.train_sizes = "64"
        args.reps, args.min_time, args.train_reps = 1, 0.0, 1
    torch.set_num_threads(args.threads)
    sizes = [int(s) for s in args.sizes.split(",") if s]
    tsizes = [int(s) for s in args.train_sizes.split(",") if s]
    skip = set(filter(None, args.skip.split(",")))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()

    def log(s):
        print(f"[{time.time() - t0:6.0f}s] {s}", flush=True)

    res = {"date": time.strftime("%Y-%m-%d %H:%M %Z"), "machine": machine_info(args.threads), "args": vars(args),
           "note": args.note, "notes": []}
    if "inference" not in skip:
        res["inference"] = bench_inference(sizes, args, log)
    if "training" not in skip:
        res["training"] = bench_training(tsizes, args, log)
    if "reference" not in skip:
        res["reference"] = bench_reference(sizes, args, log)
    res.setdefault("inference", [])
    res.setdefault("training", [])
    res["loadavg_end"] = list(os.getloadavg())
    res["wall_s"] = round(time.time() - t0, 1)
    res["notes"] += [
        "Training steps use random tensors, so they time compute only; the trainer adds EMA updates, "
        "data loading and logging on top.",
        "The progressive CycleGAN generator is omitted: at its last stage it is the plain ResNet generator "
        "(cyclegan preset row).",
        "ONNX models were exported with static shapes, one file per size.",
    ]
    (out / "engine.json").write_text(json.dumps(res, indent=2, default=str))
    (out / "engine.md").write_text(to_markdown(res))
    log(f"wrote {out / 'engine.json'} and {out / 'engine.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
