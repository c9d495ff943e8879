"""The batch runner's journal (run.py): an interrupted job — even one killed before it could write its
reports — resumes from ``report.jsonl``; the reports are complete at the end and after Ctrl-C. A
stand-in operation (no model) keeps this fast."""
import json
import shutil

import pytest

from facegan import run as runner
from facegan.errors import NoFaceError
from facegan.ops.base import Operation, OpResult


def _op(calls, stop_at=None, fail=()):
    def go(rgb):
        calls.append(1)
        if stop_at is not None and len(calls) == stop_at:
            raise KeyboardInterrupt
        if len(calls) in fail:
            raise NoFaceError("no face found in the image")
        return OpResult(image=255 - rgb, faces=[{"face": 0, "status": "changed"}, {"face": 1, "status": "changed"}])

    return Operation(name="invert", title="t", description="d", run=go)


@pytest.fixture
def photos(fixtures_dir, tmp_path):
    root = tmp_path / "photos"
    (root / "sub").mkdir(parents=True)
    for i in range(4):
        shutil.copy(fixtures_dir / "happy1.jpg", (root / "sub" if i % 2 else root) / f"p{i}.jpg")
    return root


def _rows(out):
    return json.loads((out / "report.json").read_text())["faces"]


def test_interrupted_job_keeps_what_was_done_and_resumes(photos, tmp_path):
    out = tmp_path / "out"
    calls = []
    with pytest.raises(KeyboardInterrupt):
        runner.run_op(_op(calls, stop_at=3), [photos], out, progress=False)
    # two photos done: in the journal (one line each) and in the reports written on the way out
    lines = (out / runner.JOURNAL).read_text().splitlines()
    assert len(lines) == 2 and all(len(json.loads(x)["rows"]) == 2 for x in lines)
    assert len(_rows(out)) == 4 and len(list(out.rglob("*.jpg"))) == 2
    calls.clear()
    s = runner.run_op(_op(calls), [photos], out, progress=False)
    assert (s.processed, s.skipped, len(calls)) == (2, 2, 2)
    rows = _rows(out)
    assert len(rows) == 8 and len({r["file"] for r in rows}) == 4
    assert len((out / runner.JOURNAL).read_text().splitlines()) == 4


def test_killed_job_resumes_from_the_journal_alone(photos, tmp_path):
    """A job killed hard leaves no up-to-date report.json, perhaps a line cut in half: the journal is enough."""
    out = tmp_path / "out"
    runner.run_op(_op([]), [photos], out, progress=False)
    (out / "report.json").unlink()
    (out / "report.csv").unlink()
    jl = out / runner.JOURNAL
    lines = jl.read_text().splitlines()
    jl.write_text("\n".join(lines[:3]) + "\n" + lines[3][: len(lines[3]) // 2])  # the 4th photo's line cut short
    calls = []
    s = runner.run_op(_op(calls), [photos], out, progress=False)
    assert (s.processed, s.skipped) == (1, 3)  # only the photo whose line was lost is redone
    assert len(_rows(out)) == 8 and (out / "report.csv").exists()
    assert all(json.loads(x) for x in jl.read_text().splitlines())  # compacted: whole lines only


def test_failed_photos_are_retried_and_old_report_folders_resume(photos, tmp_path):
    out = tmp_path / "out"
    s = runner.run_op(_op([], fail=(2,)), [photos], out, progress=False)
    assert (s.processed, s.failed) == (3, 1)
    assert sum(r.get("status") == "failed" for r in _rows(out)) == 1
    # an output folder written before the journal existed: report.json alone says what is done
    (out / runner.JOURNAL).unlink()
    calls = []
    s = runner.run_op(_op(calls), [photos], out, progress=False)
    assert (s.processed, s.skipped, s.failed) == (1, 3, 0)  # the failed photo, and only it
    rows = _rows(out)
    assert len(rows) == 8 and not any(r.get("status") == "failed" for r in rows)


def test_reports_are_throttled_on_big_jobs_and_complete_at_the_end(photos, tmp_path, monkeypatch):
    """With no time to spare for them (REPORT_SHARE 0) the reports are written once on the way and once
    at the end — the journal still gets every photo."""
    out = tmp_path / "out"
    writes = []
    real = runner._write_reports
    monkeypatch.setattr(runner, "_write_reports", lambda *a: writes.append(1) or real(*a))
    monkeypatch.setattr(runner, "REPORT_SHARE", 0.0)
    s = runner.run_op(_op([]), [photos], out, progress=False)
    assert s.processed == 4 and len(writes) == 2 and len(_rows(out)) == 8
    assert len((out / runner.JOURNAL).read_text().splitlines()) == 4
    out2 = tmp_path / "out2"
    writes.clear()
    monkeypatch.setattr(runner, "REPORT_SHARE", 1e9)  # cheap reports: after every photo, as before
    runner.run_op(_op([]), [photos], out2, progress=False)
    assert len(writes) == 5


def test_workers_give_the_same_outputs_and_rows(photos, tmp_path, fixtures_dir):
    """Two worker processes (spawned, each loading the detector itself) write the same photos and
    report the same rows as one process; the journal holds every photo once."""
    import numpy as np
    from PIL import Image

    from facegan.ops import get_op

    op = get_op("blur")
    shutil.copy(fixtures_dir / "two_faces.jpg", photos / "sub" / "two.jpg")
    one = runner.run_op(op, [photos], tmp_path / "one", progress=False)
    two = runner.run_op(op, [photos], tmp_path / "two", progress=False, workers=2)
    assert (one.processed, one.faces) == (two.processed, two.faces) == (5, 6)
    for f in sorted((tmp_path / "one").rglob("*.jpg")):
        g = tmp_path / "two" / f.relative_to(tmp_path / "one")
        assert np.array_equal(np.asarray(Image.open(f)), np.asarray(Image.open(g)))

    def rows(d):
        return sorted((r["file"], r["face"], tuple(r["box"])) for r in _rows(d))

    assert rows(tmp_path / "one") == rows(tmp_path / "two")  # the same input files, faces and boxes
    assert len((tmp_path / "two" / runner.JOURNAL).read_text().splitlines()) == 5
    # a re-run with workers skips everything; an unregistered op cannot go to workers
    assert runner.run_op(op, [photos], tmp_path / "two", progress=False, workers=2).skipped == 5
    with pytest.raises(runner.ConfigError):
        runner.run_op(_op([]), [photos], tmp_path / "x", progress=False, workers=2)


def test_a_script_without_the_main_guard_gets_a_clear_error(tmp_path, fixtures_dir):
    """run_op(workers=2) at a script's top level: each spawned worker re-runs the script; the worker's call
    stops before touching the output folder, and the caller gets an error that says what to write."""
    import subprocess
    import sys

    src = tmp_path / "in"
    src.mkdir()
    for i in range(2):
        shutil.copy(fixtures_dir / "happy1.jpg", src / f"p{i}.jpg")
    script = tmp_path / "job.py"
    script.write_text("from facegan.ops import get_op\nfrom facegan.run import run_op\n"
                      f"run_op(get_op('blur'), [{str(src)!r}], {str(tmp_path / 'out')!r}, progress=False, workers=2)\n")
    r = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert r.returncode != 0
    assert 'if __name__ == "__main__":' in r.stderr and "BrokenProcessPool" in r.stderr
    assert sorted(p.name for p in src.iterdir()) == ["p0.jpg", "p1.jpg"]  # inputs untouched


def test_cli_workers_option(photos, tmp_path):
    from click.testing import CliRunner

    from facegan.cli import main

    r = CliRunner().invoke(main, ["blur", str(photos), "-o", str(tmp_path / "o"), "-q", "--workers", "2"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output.strip().splitlines()[-1])["processed"] == 4
    r = CliRunner().invoke(main, ["blur", str(photos), "-o", str(tmp_path / "p"), "--workers", "0"])
    assert r.exit_code != 0 and "workers" in r.output.lower()


def test_summary_flags_a_steered_second_identity_model(tmp_path):
    from facegan.commands.ops import _proof_counts

    rows = [{"same_person_2": False, "reads_as_target": True}, {"same_person_2": True, "reads_as_target": True}]
    rep = tmp_path / "report.json"
    rep.write_text(json.dumps({"faces": rows}))
    assert _proof_counts(rep) == {"report_faces": 2, "reads_as_target": 2, "still_same_person_second_model": 1}
    rep.write_text(json.dumps({"faces": [dict(r, id_check="both") for r in rows]}))
    assert _proof_counts(rep)["second_model_steered"] is True


def test_shards_split_a_folder_and_merge_into_one_job(photos, tmp_path):
    """N machines with --shard I/N into one output folder: each photo done exactly once, each shard with
    its own journal and reports; `facegan report merge` joins them and a plain re-run then skips all."""
    from click.testing import CliRunner

    from facegan.cli import main

    out = tmp_path / "out"
    for k in range(8):
        shutil.copy(photos / "p0.jpg", photos / f"q{k}.jpg")  # 12 photos
    done = []
    for i in range(3):
        calls = []
        s = runner.run_op(_op(calls), [photos], out, progress=False, shard=f"{i}/3")
        assert s.processed == len(calls) and s.report.name == f"report.shard-{i}-of-3.json"
        done += [r["file"] for r in json.loads(s.report.read_text())["faces"]]
        assert (out / f"report.shard-{i}-of-3.jsonl").exists()
    assert len(done) == 24 and len(set(done)) == 12  # every photo once (two rows each), over the shards
    assert all(len(json.loads(p.read_text())["faces"]) > 0 for p in out.glob("report.shard-*.json"))
    # re-running a shard skips its photos
    assert runner.run_op(_op([]), [photos], out, progress=False, shard=(1, 3)).processed == 0
    r = CliRunner().invoke(main, ["report", "merge", str(out)])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output) == {"report": str(out / "report.json"), "photos": 12, "rows": 24}
    assert len(_rows(out)) == 24 and len((out / runner.JOURNAL).read_text().splitlines()) == 12
    calls = []
    s = runner.run_op(_op(calls), [photos], out, progress=False)
    assert (s.processed, s.skipped, len(calls)) == (0, 12, 0)
    for bad in ("3/3", "x", "1/0", "-1/2"):
        with pytest.raises(runner.ConfigError):
            runner.parse_shard(bad)


def test_review_sheets_put_flagged_faces_first(photos, tmp_path):
    from PIL import Image

    from facegan.review import flags_of, review_sheets

    def go(rgb):
        h, w = rgb.shape[:2]
        go.n += 1
        return OpResult(image=255 - rgb, faces=[{"face": 0, "box": [w * 0.3, h * 0.2, w * 0.7, h * 0.7], "status": "changed",
                                                 "identity_similarity": 0.8, "same_person": go.n == 3,
                                                 "reads_as_target": True, "gender_after": "male"}])
    go.n = 0
    out = tmp_path / "out"
    runner.run_op(Operation(name="inv", title="t", description="d", run=go), [photos], out, progress=False)
    res = review_sheets(out, per_page=2)
    assert (res["faces"], res["flagged"], res["failed_photos"], len(res["pages"])) == (4, 1, 0, 2)
    im = Image.open(res["pages"][0])
    assert im.size == (4 * (2 * 128 + 6), 128 + 60)
    flagged = review_sheets(out, tmp_path / "only", flagged_only=True)
    assert flagged["flagged"] == 1 and len(flagged["pages"]) == 1
    assert flags_of({"same_person": True, "same_person_2": False, "fallback": "blur"}) == ["dlib: same", "fallback blur"]
    with pytest.raises(runner.InputNotFoundError):
        review_sheets(tmp_path / "nothing")


def test_outputs_carry_no_camera_metadata_of_the_input(tmp_path, fixtures_dir):
    """An anonymized photo must not keep where and with what it was taken: the input's EXIF (GPS
    position, camera serial, owner) is not copied; the output's EXIF holds only facegan's own notes."""
    from PIL import Image

    src = tmp_path / "in"
    src.mkdir()
    im = Image.open(fixtures_dir / "happy1.jpg").convert("RGB")
    exif = Image.Exif()
    exif[0x010F] = "CameraMaker"  # Make
    exif[0x013B] = "Jane Owner"  # Artist
    gps = exif.get_ifd(0x8825)
    gps[1], gps[2] = "N", (48.0, 51.0, 29.0)
    exif.get_ifd(0x8769)[0xA431] = "SERIAL-123"  # BodySerialNumber
    im.save(src / "a.jpg", exif=exif)
    assert Image.open(src / "a.jpg").getexif().get_ifd(0x8825)  # the input does carry GPS
    runner.run_op(_op([]), [src], tmp_path / "out", progress=False)
    out = Image.open(tmp_path / "out" / "a.jpg")
    e = out.getexif()
    assert not e.get_ifd(0x8825) and 0x010F not in e and 0x013B not in e
    assert 0xA431 not in e.get_ifd(0x8769)
    assert b"CameraMaker" not in (tmp_path / "out" / "a.jpg").read_bytes()
    assert b"SERIAL-123" not in (tmp_path / "out" / "a.jpg").read_bytes()


def test_inputs_named_alike_get_their_own_outputs(tmp_path, fixtures_dir):
    """a.png and a.bmp both used to write a.png (the second silently replaced the first); x.jpg from two
    folders given one by one likewise."""
    from PIL import Image

    src = tmp_path / "in"
    (src / "b").mkdir(parents=True)
    im = Image.open(fixtures_dir / "happy1.jpg")
    im.save(src / "a.png")
    im.save(src / "a.bmp")
    out = tmp_path / "out"
    s = runner.run_op(_op([]), [src], out, progress=False)
    assert s.processed == 2
    assert sorted(p.name for p in out.glob("a*")) == ["a.bmp.png", "a.png"]
    assert {r["output"] for r in _rows(out)} == {str(out / "a.png"), str(out / "a.bmp.png")}
    calls = []
    assert runner.run_op(_op(calls), [src], out, progress=False).skipped == 2 and not calls
    shutil.copy(fixtures_dir / "happy1.jpg", src / "x.jpg")
    shutil.copy(fixtures_dir / "happy1.jpg", src / "b" / "x.jpg")
    out2 = tmp_path / "out2"
    runner.run_op(_op([]), [src / "x.jpg", src / "b" / "x.jpg"], out2, progress=False)
    assert sorted(p.name for p in out2.glob("x*")) == ["x-2.jpg", "x.jpg"]


def test_an_output_folder_inside_the_input_folder_resumes(photos):
    """photos/ -o photos/anon/: a re-run used to take the first run's outputs for inputs and stop
    ("would overwrite an input photo")."""
    out = photos / "anon"
    runner.run_op(_op([]), [photos], out, progress=False)
    calls = []
    s = runner.run_op(_op(calls), [photos], out, progress=False)
    assert (s.processed, s.skipped, len(calls)) == (0, 4, 0)
    assert not (out / "anon").exists()


def test_outputs_next_to_their_inputs_are_not_inputs_on_a_re_run(tmp_path, fixtures_dir):
    """-o photos/ --suffix _x: the outputs lie among the inputs; a re-run skips them (the journal says they are
    this job's), while a photo of the user's that an output would replace is still refused."""
    from facegan.errors import OutputExistsError

    d = tmp_path / "photos"
    d.mkdir()
    shutil.copy(fixtures_dir / "happy1.jpg", d / "p.jpg")
    assert runner.run_op(_op([]), [d], d, suffix="_x", progress=False).processed == 1
    calls = []
    s = runner.run_op(_op(calls), [d], d, suffix="_x", progress=False)
    assert (s.processed, s.skipped, len(calls)) == (0, 1, 0) and not (d / "p_x_x.jpg").exists()
    shutil.copy(fixtures_dir / "happy1.jpg", d / "q.jpg")
    shutil.copy(fixtures_dir / "happy1.jpg", d / "q_x.jpg")  # the user's own photo, not an output
    with pytest.raises(OutputExistsError):
        runner.run_op(_op([]), [d], d, suffix="_x", progress=False)


def test_review_sheet_labels_use_characters_its_font_draws():
    from facegan.review import _drawable

    assert _drawable("ünï cöde.jpg") == "uni code.jpg" and _drawable("写真.jpg") == "??.jpg"


def test_dry_run_says_what_would_be_done_and_writes_nothing(photos, tmp_path):
    out = tmp_path / "out"
    plan = runner.run_op(_op([]), [photos], out, progress=False, dry_run=True)
    assert (plan["photos"], plan["to_do"], plan["skip_done"], plan["dry_run"]) == (4, 4, 0, True)
    assert not out.exists()
    calls = []
    runner.run_op(_op([]), [photos], out, progress=False)
    (out / "p0.jpg").unlink()  # one output lost: only that photo is to do
    plan = runner.run_op(_op(calls), [photos], out, progress=False, dry_run=True)
    assert (plan["to_do"], plan["skip_done"], calls) == (1, 3, [])
    assert plan["first"] == [{"file": str(photos / "p0.jpg"), "output": str(out / "p0.jpg")}]
    assert not (out / "p0.jpg").exists()


def test_cli_dry_run(photos, tmp_path):
    from click.testing import CliRunner

    from facegan.cli import main

    r = CliRunner().invoke(main, ["blur", str(photos), "-o", str(tmp_path / "out"), "--dry-run"])
    assert r.exit_code == 0, r.output
    plan = json.loads(r.output.strip().splitlines()[-1])
    assert plan["to_do"] == 4 and plan["options"] == {"strength": 1.0} and not (tmp_path / "out").exists()


def test_report_summary_gives_rates_with_intervals(tmp_path):
    from click.testing import CliRunner

    from facegan.cli import main
    from facegan.review import summarize_job

    rows = ([{"file": f"m{i}.jpg", "status": "changed", "target": "female", "reads_as_target": True,
              "same_person": i == 0, "identity_similarity": 0.8} for i in range(10)]
            + [{"file": "k.jpg", "status": "kept (matches a keep-face reference)"},
               {"file": "bad.jpg", "status": "failed", "error": "no_face"}])
    (tmp_path / "report.json").write_text(json.dumps({"meta": {}, "faces": rows}))
    s = summarize_job(tmp_path)
    assert (s["photos"], s["failed_photos"], s["faces"]) == (12, 1, 11)
    assert s["by_status"] == {"changed": 10, "kept": 1}
    same = s["still_same_person"]
    assert (same["n"], same["count"], same["rate"]) == (10, 1, 0.1) and same["interval_95"][0] < 0.1 < same["interval_95"][1]
    assert s["by_direction"]["towards female"]["reads_as_target"]["rate"] == 1.0
    r = CliRunner().invoke(main, ["report", "summary", str(tmp_path)])
    assert r.exit_code == 0 and json.loads(r.output)["faces"] == 11
    r = CliRunner().invoke(main, ["report", "summary", str(tmp_path / "none")])
    assert r.exit_code != 0
    shards = tmp_path / "shards"
    shards.mkdir()
    (shards / "report.shard-0-of-2.jsonl").write_text("")
    r = CliRunner().invoke(main, ["report", "summary", str(shards)])
    assert r.exit_code == 15 and "facegan report merge" in r.output
