"""Every CSV the project writes escapes text cells a spreadsheet would run as formulas
(agents/csv_safe.py), numbers stay numbers, and no CSV is written another way."""

from __future__ import annotations

import csv
import io
import re
import shutil
from pathlib import Path

import pytest

from agents.csv_safe import csv_text, safe_cell
from tests.test_recommend import EN, cli

ROOT = Path(__file__).resolve().parent.parent
FORMULAS = ("=cmd|' -C calc'!A0", "@SUM(A1)", "+1+cmd", "-2+cmd", "\t=1+1", "\r=1+1",
            "=HYPERLINK(\"http://x\")")
NUMBERS = ("-3.5", "+0.12", "1e-05", "-1E+03", "12", "0.5", "-.5")


@pytest.mark.parametrize("text", FORMULAS)
def test_a_formula_text_is_escaped(text):
    assert safe_cell(text) == "'" + text


@pytest.mark.parametrize("value", [*NUMBERS, -3.5, 7, None, "", "3c", "shop a", "'=x"])
def test_numbers_and_plain_text_are_unchanged(value):
    assert safe_cell(value) == value


def test_csv_text_escapes_header_and_cells_and_keeps_numbers():
    text = csv_text(["account", "=x", "change"],
                    [{"account": FORMULAS[0], "=x": "-1", "change": "-3.5"},
                     [FORMULAS[1], 2, -0.25]])
    rows = list(csv.reader(io.StringIO(text)))
    assert rows == [["account", "'=x", "change"], ["'" + FORMULAS[0], "-1", "-3.5"],
                    ["'" + FORMULAS[1], "2", "-0.25"]]


WRITERS = ("csv.writer", "csv.DictWriter", "DictWriter(", ".to_csv(", "writerow")


def test_no_csv_is_written_but_through_csv_safe():
    """Every CSV writer of agents/, envs/, scripts/ and examples/ calls agents.csv_safe."""
    offenders = []
    for folder in ("agents", "envs", "scripts", "examples"):
        for path in (ROOT / folder).rglob("*.py"):
            if path == ROOT / "agents" / "csv_safe.py":
                continue
            text = path.read_text(encoding="utf-8")
            offenders += [f"{path.relative_to(ROOT)}: {w}" for w in WRITERS if w in text]
    assert offenders == []


def test_evaluation_and_sweep_summaries_use_the_escaping_writer():
    from agents.evaluation.report import csv_text as evaluation_csv
    from agents.experiments import sweep

    assert sweep.csv_text is csv_text  # sweep's summary.csv
    text = evaluation_csv([{"policy": "=cmd|' -C calc'!A0", "value": -3.5, "seed": -2}])
    assert text.splitlines()[1] == "'=cmd|' -C calc'!A0,-3.5,-2"
    assert re.search(r"csv_text\(", (ROOT / "agents/evaluation/results.py").read_text())


def test_written_report_escapes_text_cells(tmp_path):
    from agents.serving.report import write_report

    path = write_report(tmp_path / "r.csv", ["2025-01-01"], {"spend": [-1.5]},
                        headers={"date": "@date"})
    assert path.read_text().splitlines() == ["'@date,spend", "2025-01-01,-1.5"]


@pytest.mark.parametrize("name", ["=cmd|' -C calc'!A0", "@SUM(A1)", "+cmd", "-cmd"])
def test_batch_csv_escapes_a_report_named_as_a_formula(tmp_path, capsys, name):
    reports = tmp_path / "=reports"
    reports.mkdir()
    shutil.copy(EN, reports / f"{name}.csv")
    out = tmp_path / "out.csv"
    code, _, err = cli(capsys, "--policy", "playbook", "--batch", reports, "--out", out)
    assert code == 0, err
    rows = list(csv.DictReader(io.StringIO(out.read_text(encoding="utf-8-sig"))))
    assert rows[0]["account"] == "'" + name
    assert not rows[0]["file"].startswith(("=", "+", "-", "@"))
    for column in ("target_change", "budget_change_cny", "recommended_target_roi"):
        float(rows[0][column])  # numbers (a -0.10 change) stay numbers
