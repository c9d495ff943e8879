"""The README's evaluation table quotes the committed evaluation report: its two default rows (swap-gender,
anonymize) must carry the numbers of ``reports/gender-eval/metrics.json``, so a rerun that moves them
cannot leave the README behind."""
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _cells(line: str) -> list[str]:
    return [re.sub(r"[*]", "", c).strip() for c in line.strip().strip("|").split("|")]


@pytest.mark.parametrize("op", ["swap-gender", "anonymize"])
def test_readme_default_rows_match_the_committed_report(op):
    metrics = json.loads((ROOT / "reports" / "gender-eval" / "metrics.json").read_text())["ops"][op]
    rows = [line for line in (ROOT / "README.md").read_text().splitlines() if line.startswith(f"| **{op} (default")]
    assert len(rows) == 1, f"one bold default row for {op} in the README's evaluation table"
    c = _cells(rows[0])

    def pct(k):
        return f"{100 * metrics[k]:.1f}%"

    assert c[1:5] == [pct("flip_male->female"), pct("flip_female->male"), pct("flip2_male->female"),
                      pct("flip2_female->male")]
    assert c[5] == f"{metrics['identity_similarity_mean']:.3f}"
    assert c[6] == f"{pct('reid_rate')} / {pct('reid_rate_2')}"
    assert c[7] == f"{1000 * metrics['kid_male->female']:.1f} / {1000 * metrics['kid_female->male']:.1f}"
    assert c[8] == f"{1000 * metrics['kid_j2_male->female']:.1f} / {1000 * metrics['kid_j2_female->male']:.1f}"
    assert c[9] == f"{metrics['time_per_face_s_median']:.3f}"


def _rows(name: str, n_cols: int) -> list[list[str]]:
    lines = (ROOT / "README.md").read_text().splitlines()
    return [_cells(x) for x in lines if x.startswith(f"| {name} |") and x.count("|") == n_cols + 1]


@pytest.mark.parametrize("op", ["swap-gender", "anonymize"])
def test_readme_detail_and_large_photo_rows_match_their_reports(op):
    d = json.loads((ROOT / "reports" / "gender-eval" / "detail-kept" / "metrics.json").read_text())["ops"][op]
    (row,) = _rows(f"{op} (default)", 3)  # the detail-kept table
    pc = d["detail_kept_pct"]
    assert row[1:] == [f"{d['detail_kept_median']:.2f}", f"{pc['10']:.2f}-{pc['90']:.2f}"]
    p = json.loads((ROOT / "reports" / "portraits" / "metrics.json").read_text())["ops"][op]
    (row,) = _rows(f"{op} (default)", 6)  # the large photos' table

    def pct(k):
        return f"{100 * p[k]:.1f}%"

    assert row[1] == f"{pct('reads_as_target_2')} / {pct('reads_as_target')}"
    assert row[2] == f"{pct('same_person')} / {pct('same_person_2')}"
    assert row[3] == f"{pct('large_same_person')} / {pct('large_same_person_2')}"
    assert row[4] == f"{p['detail_kept_median']:.2f} ({p['large_detail_kept_median']:.2f})"


@pytest.mark.parametrize("op", ["swap-gender", "anonymize", "blur", "pixelate"])
def test_readme_whole_test_split_rows_match_their_report(op):
    from facegan.evaluate.harness import wilson

    m = json.loads((ROOT / "reports" / "gender-eval" / "full-test-split" / "metrics.json").read_text())["ops"][op]
    name = f"{op} (default)" if op in ("swap-gender", "anonymize") else op
    rows = [r for r in _rows(name, 4) if "%" in r[3]]
    assert len(rows) == 1, f"one row for {op} in the whole-test-split table"

    def cell(k, n):
        lo, hi = wilson(m[k], n)
        return f"{100 * m[k]:.1f}% ({100 * lo:.0f}-{100 * hi:.0f}%)"

    assert rows[0][1:] == [cell("flip2_male->female", m["n_male->female"]), cell("flip2_female->male", m["n_female->male"]),
                           cell("reid_rate_2", m["n"])]


def test_keep_face_rates_quoted_match_the_committed_measurement():
    m = json.loads((ROOT / "reports" / "keep-face" / "metrics.json").read_text())
    readme = (ROOT / "README.md").read_text()
    table = (ROOT / "reports" / "keep-face" / "README.md").read_text()
    flat = readme.replace("\n  ", " ")
    r5, r6 = (100 * m[f"at_{t}"]["bystander_kept_per_reference"] for t in ("0.5", "0.6"))
    assert f"{r5:.3f}% of other people's faces match a reference at 0.5, {r6:.2f}% at 0.6" in flat
    assert f"**{100 * m['at_0.5']['bystander_kept_per_reference']:.3f}% ({m['at_0.5']['impostor_pairs_under']})**" in table
    assert m["genuine_pairs"] == 56 and m["at_0.5"]["genuine_kept"] == 1.0
