"""Engine data: sources (folder, regex, CSV, UTKFace split, video, npz), unpaired / paired / swap
datasets, the deterministic DDP-aware sampler, augmentations and the aligned-face cache."""
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from facegan.errors import ConfigError, InputNotFoundError
from facegan.train.augment import Augment, degrade, random_warp
from facegan.train.datasets import (DataOptions, PairedDataset, StreamBatchSampler, SwapDataset, UnpairedDataset,
                                    build_data, build_source)
from facegan.train.config import resolve
from facegan.train.utkface import split_of

torch.set_num_threads(1)
FIX = Path(__file__).parent / "fixtures"


def make_images(folder: Path, names, size=40, seed=0):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i, n in enumerate(names):
        img = np.zeros((size, size, 3), np.uint8)
        img[:] = rng.integers(0, 255, 3)
        img[: size // 2, : size // 3] = (i * 37) % 255  # an asymmetric mark (flip is visible)
        cv2.imwrite(str(folder / n), img[..., ::-1])
    return folder


def utk_names(n=24):
    # AGE_GENDER_RACE_DATETIME.jpg with ages 10..80 and alternating gender
    return [f"{10 + 3 * i}_{i % 2}_{i % 5}_2017011{i:02d}12345678{i % 10}.jpg" for i in range(n)]


def opts(**kw):
    return DataOptions(load_size=32, progress=False, **kw)


def test_folder_regex_limit(tmp_path):
    make_images(tmp_path / "f", [f"img_{k}_{i}.png" for i in range(6) for k in "ab"])
    s = build_source({"folder": str(tmp_path / "f")}, opts())
    assert len(s) == 12 and s.get(0).shape == (32, 32, 3) and s.arrays is not None
    r = build_source({"folder": str(tmp_path / "f"), "regex": r"img_(\w)_", "group": 1, "equals": "b"}, opts())
    assert len(r) == 6 and all("_b_" in n for n in r.names)
    lim = build_source({"folder": str(tmp_path / "f"), "limit": 5}, opts(seed=3))
    assert len(lim) == 5 and lim.names == build_source({"folder": str(tmp_path / "f"), "limit": 5}, opts(seed=3)).names
    with pytest.raises(InputNotFoundError):
        build_source(str(tmp_path / "missing"), opts())
    with pytest.raises(ConfigError, match="unknown keys"):
        build_source({"folder": str(tmp_path / "f"), "colour": 1}, opts())
    with pytest.raises(ConfigError, match="no images"):
        build_source({"folder": str(tmp_path / "f"), "regex": "zzz"}, opts())


def test_utkface_attribute_split_is_leak_free(tmp_path):
    names = utk_names(40)
    make_images(tmp_path / "utk", names)
    spec = {"utkface": str(tmp_path / "utk"), "gender": 1, "min_age": 20, "max_age": 70}
    train = build_source(spec, opts())
    test = build_source({**spec, "split": "test"}, opts())
    both = build_source({**spec, "split": "all"}, opts())
    for n in train.names + test.names:
        age, gender = int(n.split("_")[0]), int(n.split("_")[1])
        assert gender == 1 and 20 <= age <= 70
    assert train.names and test.names and not set(train.names) & set(test.names)
    assert set(train.names) | set(test.names) == set(both.names)
    stem = lambda n: n.split("_")[3].split(".")[0]  # noqa: E731
    assert all(split_of(stem(n)) == "train" for n in train.names)
    assert all(split_of(stem(n)) == "test" for n in test.names)
    males = build_source({**spec, "gender": 0}, opts())
    assert not set(males.names) & set(both.names)


def test_csv_labels(tmp_path):
    make_images(tmp_path / "imgs", ["a.png", "b.png", "c.png"])
    (tmp_path / "labels.csv").write_text("file,gender,smile\na.png,female,1\nb.png,male,1\nc.png,female,0\n")
    s = build_source({"csv": str(tmp_path / "labels.csv"), "root": str(tmp_path / "imgs"),
                      "where": {"gender": "female", "smile": [1]}}, opts())
    assert s.names == ["a.png"]
    with pytest.raises(ConfigError, match="no column"):
        build_source({"csv": str(tmp_path / "labels.csv"), "root": str(tmp_path / "imgs"),
                      "where": {"age": 3}}, opts())


def test_video_and_npz_sources(tmp_path):
    path = tmp_path / "v.avi"
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (48, 40))
    for i in range(7):
        w.write(np.full((40, 48, 3), i * 30, np.uint8))
    w.release()
    s = build_source({"video": str(path), "every": 2}, opts())
    assert len(s) == 4 and s.get(3).shape == (32, 32, 3)
    assert abs(int(s.get(3).mean()) - 180) < 8  # frame 6
    np.savez(tmp_path / "c.npz", crops=np.zeros((3, 32, 32, 3), np.uint8), name=np.array(["x", "y", "z"]))
    assert build_source(str(tmp_path / "c.npz"), opts()).names == ["x", "y", "z"]


def test_sampler_is_deterministic_and_shards_ranks():
    s = StreamBatchSampler([5, 3], batch=2, seed=7)
    it = iter(s)
    first = [next(it) for _ in range(8)]
    again = StreamBatchSampler([5, 3], batch=2, seed=7, start_step=3)
    assert next(iter(again)) == first[3]  # resume mid-stream
    # every epoch of domain 0 visits every index once
    ks = [key for b in first for key in b]
    assert sorted(k[0] for k in ks[:5]) == list(range(5)) and sorted(k[1] for k in ks[:3]) == list(range(3))
    # two ranks together see exactly what one process with a double batch sees
    r0 = StreamBatchSampler([5, 3], 2, 7, rank=0, world=2).keys(4)
    r1 = StreamBatchSampler([5, 3], 2, 7, rank=1, world=2).keys(4)
    single = StreamBatchSampler([5, 3], 4, 7).keys(4)
    assert sorted(r0 + r1) == sorted(single) and not set(r0) & set(r1)


def test_unpaired_dataset_flip_and_determinism(tmp_path):
    a = build_source(str(make_images(tmp_path / "a", [f"{i}.png" for i in range(4)])), opts())
    b = build_source(str(make_images(tmp_path / "b", [f"{i}.png" for i in range(3)], seed=1)), opts())
    ds = UnpairedDataset(a, b, Augment(32, flip=True), seed=0)
    x1, x2 = ds[(1, 2, 10)], ds[(1, 2, 10)]
    assert torch.equal(x1["A"], x2["A"]) and x1["A"].shape == (3, 32, 32)
    assert -1 <= float(x1["A"].min()) and float(x1["A"].max()) <= 1
    raw = torch.from_numpy(a.get(1)).permute(2, 0, 1).float() / 127.5 - 1
    flips = [torch.equal(ds[(1, 0, k)]["A"], raw.flip(-1)) for k in range(20)]
    same = [torch.equal(ds[(1, 0, k)]["A"], raw) for k in range(20)]
    assert any(flips) and any(same) and all(f != s for f, s in zip(flips, same))


def test_paired_sources(tmp_path):
    names = [f"{i}.png" for i in range(3)]
    a = build_source(str(make_images(tmp_path / "A", names + ["only_a.png"])), opts())
    b = build_source(str(make_images(tmp_path / "B", names, seed=5)), opts())
    ds = PairedDataset(Augment(32, flip=True), a=a, b=b)
    assert len(ds) == 3
    item = ds[(0, 4)]
    # the same flip for input and target: compare with the un-augmented pair
    plain = ds.make(0, None)
    assert (torch.equal(item["A"], plain["A"]) and torch.equal(item["B"], plain["B"])) or \
           (torch.equal(item["A"], plain["A"].flip(-1)) and torch.equal(item["B"], plain["B"].flip(-1)))
    # side-by-side AB images
    (tmp_path / "AB").mkdir()
    left, right = np.full((40, 40, 3), 20, np.uint8), np.full((40, 40, 3), 220, np.uint8)
    cv2.imwrite(str(tmp_path / "AB" / "p.png"), np.concatenate([left, right], 1))
    cfg = resolve({"method": "pix2pix", "size": 32, "data": {"ab": str(tmp_path / "AB"), "flip": False}})
    ds2, fixed = build_data(cfg, "paired", progress=False)
    assert float(fixed["A"].mean()) < -0.7 and float(fixed["B"].mean()) > 0.7
    # synthetic pairs: grayscale input, colour target; BtoA swaps them
    cfg = resolve({"method": "pix2pix", "size": 32, "data": {"source": str(tmp_path / "B"), "degrade": "grayscale"}})
    ds3, fixed = build_data(cfg, "paired", progress=False)
    assert torch.allclose(fixed["A"][:, 0], fixed["A"][:, 1]) and not torch.allclose(fixed["B"][:, 0], fixed["B"][:, 1])
    cfg = resolve({"method": "pix2pix", "size": 32, "data": {"source": str(tmp_path / "B"), "direction": "BtoA"}})
    _, fixed = build_data(cfg, "paired", progress=False)
    assert torch.allclose(fixed["B"][:, 0], fixed["B"][:, 1])
    with pytest.raises(ConfigError):
        PairedDataset(Augment(32))


def test_swap_dataset_warps_input_only(tmp_path):
    a = build_source(str(make_images(tmp_path / "a", ["0.png", "1.png"])), opts())
    ds = SwapDataset(a, a, 32, seed=0)
    it = ds[(0, 1, 3)]
    assert set(it) == {"A_in", "A", "B_in", "B"}
    assert not torch.equal(it["A_in"], it["A"])
    assert (it["A_in"] - it["A"]).abs().mean() < 0.5  # a small warp, not another image
    assert torch.equal(ds[(0, 1, 3)]["A_in"], it["A_in"])


def test_augment_and_degrade():
    rng = np.random.default_rng(0)
    img = (np.random.default_rng(1).random((32, 32, 3)) * 255).astype(np.uint8)
    aug = Augment(24, flip=False, jitter=0.2, color=0.2)
    out = aug(img, rng)
    assert out.shape == (24, 24, 3) and out.dtype == np.uint8
    assert np.array_equal(random_warp(img, np.random.default_rng(0), sigma=0.0), img)
    for k in ["grayscale", "blur", "downscale", "edges"]:
        d = degrade(img, k)
        assert d.shape == img.shape and not np.array_equal(d, img)
    with pytest.raises(ValueError):
        degrade(img, "sepia")


def test_alignment_cache(tmp_path):
    faces = tmp_path / "faces"
    faces.mkdir()
    for n in ["happy.jpg", "sad.jpg", "happy1.jpg"]:
        shutil.copy(FIX / n, faces / n)
    o = opts(align=True, template="utkface", cache_dir=str(tmp_path / "cache"))
    s = build_source(str(faces), o)
    assert len(s) == 3 and s.info["aligned"] and s.info["detected"] == 3
    caches = list((tmp_path / "cache").glob("aligned_*.npz"))
    assert len(caches) == 1
    # the cache is used the second time (poison it and see the poison come back)
    z = dict(np.load(caches[0]))
    z["crops"] = np.zeros_like(z["crops"])
    np.savez(caches[0], **z)
    assert build_source(str(faces), o).get(0).max() == 0
    # a changed image set gets a new cache
    (faces / "sad.jpg").unlink()
    assert len(build_source(str(faces), o)) == 2
    assert len(list((tmp_path / "cache").glob("aligned_*.npz"))) == 2


def test_workers_do_not_change_batches(tmp_path):
    from torch.utils.data import DataLoader

    a = build_source(str(make_images(tmp_path / "a", [f"{i}.png" for i in range(5)])), opts())
    b = build_source(str(make_images(tmp_path / "b", [f"{i}.png" for i in range(4)], seed=2)), opts())
    ds = UnpairedDataset(a, b, Augment(32, flip=True, jitter=0.1, color=0.1), seed=1)

    def batches(nw):
        dl = DataLoader(ds, batch_sampler=StreamBatchSampler(ds.sizes, 3, seed=1), num_workers=nw)
        it = iter(dl)
        return [next(it) for _ in range(4)]

    for x, y in zip(batches(0), batches(2)):
        assert torch.equal(x["A"], y["A"]) and torch.equal(x["B"], y["B"])
