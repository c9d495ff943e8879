"""Configs: presets, inheritance (base:/inherit:), --set overrides, validation, dry-run (incl. the
attr-translator dispatch)."""
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from facegan.cli import main
from facegan.errors import ConfigError, InputNotFoundError
from facegan.train.config import apply_set, list_presets, load_config, load_raw, resolve

ROOT = Path(__file__).resolve().parents[1]


def write(p: Path, data: dict) -> Path:
    p.write_text(yaml.safe_dump(data))
    return p


def test_presets_resolve():
    names = list_presets()
    for want in ["cyclegan", "cyclegan-unet", "cyclegan-progressive", "unit", "pix2pix", "pix2pixhd", "faceswap",
                 "twingan"]:
        assert want in names
    for n in names:
        if n == "base":
            continue
        cfg = load_config(n)
        assert cfg.method and cfg.name == n and cfg.out_dir == f"runs/{n}"


def test_inheritance_chain_and_set(tmp_path):
    parent = write(tmp_path / "parent.yaml", {"base": "cyclegan", "model": {"ngf": 16}, "train": {"steps": 50}})
    child = write(tmp_path / "child.yaml", {"inherit": "parent.yaml", "train": {"batch": 3}})
    cfg = load_config(child, ["model.n_blocks=2", "train.lr=1e-3", "data.a.limit=7", "domains=[x, y]"])
    assert cfg.method == "cyclegan"  # from the preset two levels up
    assert cfg.model.ngf == 16 and cfg.train.steps == 50 and cfg.train.batch == 3
    assert cfg.model.n_blocks == 2 and cfg.train.lr == pytest.approx(1e-3)
    assert cfg.data.a["limit"] == 7 and cfg.data.a["gender"] == 0  # --set reaches into a source spec
    assert cfg.domains == ["x", "y"]
    assert cfg.name == "child" and cfg.model.ndf == 32  # untouched defaults survive
    assert cfg.train.pool_size == 50  # method defaults


def test_source_specs_are_replaced_not_merged(tmp_path):
    c = write(tmp_path / "c.yaml", {"base": "cyclegan", "data": {"a": "some/folder"}})
    cfg = load_config(c)
    assert cfg.data.a == "some/folder"
    c2 = write(tmp_path / "c2.yaml", {"base": "cyclegan", "data": {"a": {"folder": "x"}}})
    assert dict(load_config(c2).data.a) == {"folder": "x"}


def test_unknown_keys_and_bad_configs(tmp_path):
    with pytest.raises(ConfigError, match="model.ngff"):
        load_config("cyclegan", ["model.ngff=3"])
    with pytest.raises(ConfigError, match="method"):
        resolve({"size": 64})
    with pytest.raises(ConfigError, match="unknown method"):
        resolve({"method": "nope"})
    a = write(tmp_path / "a.yaml", {"base": "b.yaml", "method": "cyclegan"})
    write(tmp_path / "b.yaml", {"base": "a.yaml"})
    with pytest.raises(ConfigError, match="cycle"):
        load_raw(a)
    with pytest.raises(InputNotFoundError):
        load_raw("no-such-preset")
    with pytest.raises(ConfigError):
        apply_set({}, ["novalue"])


def test_dry_run_prints_config_and_param_counts():
    r = CliRunner().invoke(main, ["train", "cyclegan", "--dry-run", "--set", "model.ngf=8", "--set", "model.ndf=8",
                                  "--set", "model.n_blocks=1"])
    assert r.exit_code == 0, r.output
    head, _, nets = r.output.partition("# networks (cyclegan)")
    cfg = yaml.safe_load(head)
    assert cfg["method"] == "cyclegan" and cfg["model"]["ngf"] == 8
    from facegan.nets.blocks import count_params
    from facegan.nets.cyclegan import NLayerDiscriminator, ResnetGenerator

    g = count_params(ResnetGenerator(3, 3, ngf=8, n_blocks=1))
    d = count_params(NLayerDiscriminator(3, 8, 3))
    assert f"{g:,d}" in nets and f"{d:,d}" in nets
    assert f"{2 * g + 2 * d:,d}" in nets  # total


def test_dry_run_unknown_key_exit_code():
    r = CliRunner().invoke(main, ["train", "unit", "--dry-run", "--set", "loss.nope=1"])
    assert r.exit_code == ConfigError.exit_code
    assert "loss.nope" in r.output


def test_attr_translator_dispatch_dry_run(tmp_path):
    cfg = ROOT / "configs" / "gender-translator.yaml"
    r = CliRunner().invoke(main, ["train", str(cfg), "--dry-run", "--set", "ngf=16", "--out", str(tmp_path / "o")])
    assert r.exit_code == 0, r.output
    head, _, nets = r.output.partition("# networks (attr-translator)")
    d = yaml.safe_load(head)
    assert d["method"] == "attr-translator" and d["ngf"] == 16 and d["out_dir"] == str(tmp_path / "o")
    assert "ResidualTranslator" in nets and "SmallCNN" in nets
    bad = CliRunner().invoke(main, ["train", str(cfg), "--dry-run", "--set", "bogus=1"])
    assert bad.exit_code == ConfigError.exit_code


def test_attr_translator_dispatch_calls_lead_trainer(tmp_path, monkeypatch):
    import facegan.train.attr_translator as at

    seen = {}

    def fake_train(cfg, max_minutes=None):
        seen["cfg"], seen["mm"] = cfg, max_minutes
        return {"step": 0}

    monkeypatch.setattr(at, "train", fake_train)
    r = CliRunner().invoke(main, ["train", str(ROOT / "configs" / "gender-translator.yaml"), "--max-minutes", "2",
                                  "--set", "steps=5", "--out", str(tmp_path)])
    assert r.exit_code == 0, r.output
    assert isinstance(seen["cfg"], at.AttrTranslatorConfig)
    assert seen["cfg"].steps == 5 and seen["cfg"].out_dir == str(tmp_path) and seen["mm"] == 2.0


def test_list_presets_cli():
    r = CliRunner().invoke(main, ["train", "--list-presets"])
    assert r.exit_code == 0 and "pix2pixhd" in r.output.split()
