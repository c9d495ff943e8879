"""Multi-process data parallelism on CPU (gloo, world size 2): ranks stay in lock-step with averaged
gradients, see different data, and only rank 0 writes."""
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

torch.set_num_threads(1)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(rank, world, port):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))


def _grad_worker(rank, world, port, out):
    _env(rank, world, port)
    torch.set_num_threads(1)
    from facegan.train.distributed import allreduce_grads, init

    info = init("cpu")
    lin = torch.nn.Linear(3, 2)
    torch.nn.init.constant_(lin.weight, 1.0)
    x = torch.full((1, 3), float(rank + 1))
    lin(x).sum().backward()
    allreduce_grads(list(lin.parameters()), info.world)
    torch.save(lin.weight.grad, os.path.join(out, f"g{rank}.pt"))
    dist.barrier()  # both ranks done before the group goes
    dist.destroy_process_group()


def _train_worker(rank, world, port, cfg_raw, out):
    _env(rank, world, port)
    torch.set_num_threads(1)
    from facegan.train.config import resolve
    from facegan.train.trainer import train

    seen = []

    def cb(step, method, losses):
        seen.append(losses["cyc_A"])
        if step == 3:
            torch.save({k: v.clone() for k, v in method.nets["G"].state_dict().items()},
                       os.path.join(out, f"G{rank}.pt"))

    res = train(resolve(cfg_raw), progress=False, log=lambda m: None, callback=cb)
    Path(out, f"res{rank}.json").write_text(json.dumps({"res": res, "cyc": seen}))


def test_allreduce_averages_gradients(tmp_path):
    mp.spawn(_grad_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    g0, g1 = torch.load(tmp_path / "g0.pt"), torch.load(tmp_path / "g1.pt")
    assert torch.equal(g0, g1)
    assert torch.allclose(g0, torch.full((2, 3), 1.5))  # mean of inputs 1 and 2


def _faces(folder: Path, n: int, seed: int) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        cv2.imwrite(str(folder / f"{i}.png"), cv2.resize(rng.integers(0, 255, (4, 4, 3)).astype(np.uint8), (32, 32)))
    return str(folder)


def test_ddp_training_two_ranks(tmp_path):
    raw = {"method": "cyclegan", "size": 32, "threads": 1, "device": "cpu",
           "data": {"a": _faces(tmp_path / "a", 6, 0), "b": _faces(tmp_path / "b", 6, 1), "sample_n": 2},
           "model": {"ngf": 8, "ndf": 8, "n_blocks": 1},
           "train": {"steps": 3, "batch": 1, "log_every": 1, "sample_every": 3, "ckpt_every": 100},
           "out_dir": str(tmp_path / "run")}
    mp.spawn(_train_worker, args=(2, _free_port(), raw, str(tmp_path)), nprocs=2, join=True)
    g0, g1 = torch.load(tmp_path / "G0.pt"), torch.load(tmp_path / "G1.pt")
    for k in g0:
        assert torch.equal(g0[k], g1[k]), k  # identical weights on both ranks
    r0 = json.loads((tmp_path / "res0.json").read_text())
    r1 = json.loads((tmp_path / "res1.json").read_text())
    assert r0["res"]["step"] == r1["res"]["step"] == 3
    assert r0["cyc"] != r1["cyc"]  # each rank trained on its own shard
    # only rank 0 wrote: one log line per step, one checkpoint
    lines = (tmp_path / "run/losses.jsonl").read_text().splitlines()
    assert [json.loads(x)["step"] for x in lines] == [1, 2, 3]
    from safetensors.torch import load_file

    saved = load_file(str(tmp_path / "run/last/G.safetensors"))
    assert all(torch.equal(saved[k], g0[k]) for k in g0)  # the checkpoint holds the step-3 weights
    assert json.loads((tmp_path / "run/last/meta.json").read_text())["step"] == 3


@pytest.mark.slow
def test_torchrun_cli(tmp_path):
    """The documented entry point: torchrun ... -m facegan.cli train (slow: two fresh interpreters)."""
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"base: cyclegan\nsize: 32\nthreads: 1\ndevice: cpu\n"
                   f"data: {{a: {_faces(tmp_path / 'a', 4, 0)}, b: {_faces(tmp_path / 'b', 4, 1)}}}\n"
                   "model: {ngf: 8, ndf: 8, n_blocks: 1}\ntrain: {steps: 2, batch: 1, log_every: 1}\n")
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                        "--master_port", str(_free_port()), "-m", "facegan.cli", "train", str(cfg),
                        "--out", str(tmp_path / "o"), "--no-progress"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert json.loads((tmp_path / "o/last/meta.json").read_text())["step"] == 2
