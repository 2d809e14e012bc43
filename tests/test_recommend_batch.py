"""recommend --batch REPORTS --fit FITS: every account calibrated into FITS/<account>/ (or its
fit reused when it is of the same report with the same options, refitted when stale) and
recommended for with its week's forecast, one CSV row each; a bad account's row names its
error and the exit code is 3; the accounts spread over workers through the shared trial
queue (SQLite here) give the same rows, and a dead worker's account is retried."""

from __future__ import annotations

import csv
import json
import os
import shutil
import uuid
from pathlib import Path

import optuna
import pytest
from conftest import load_script
from optuna.trial import TrialState
from sqlalchemy.engine import make_url

from agents.calibration.batch import (
    EXTRA_COLUMNS,
    SOME_FAILED_EXIT,
    BatchSettings,
    account_inputs,
    batch_accounts,
)
from agents.calibration.batch_queue import ACCOUNT_ATTR, ROW_ATTR, queue_spec
from agents.calibration.pipeline import CalibrationInputs, fit_is_current
from agents.calibration.synthetic import synthetic_account
from agents.experiments.queue import (
    SLOT_ATTR,
    HeartbeatSettings,
    TrialQueue,
    create_or_join,
    open_storage,
)
from agents.serving.output import CSV_COLUMNS
from agents.serving.recommend import RecommendOptions
from agents.serving.report import read_report, write_report
from envs.config import load_scenario

ROOT = Path(__file__).resolve().parent.parent
DAYS = 28  # the shortest report calibrate accepts: the cheapest fit
GOOD = ("shop_a", "shop_b")  # synthetic accounts 40 and 41 of 3c (seeds 60040, 60041)
SHORT, NO_ORDERS = "=too_short", "without_orders"  # bad; the first named like a formula
FAST = ["--heartbeat", "1", "--grace", "3"]


recommend = load_script("recommend_cli_batch", "recommend.py")


def read_rows(path: Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8-sig", newline="") as handle:
        return list(csv.DictReader(handle))


def cli(capsys, *args) -> tuple[int, str, str]:
    """scripts/recommend.py in this process: (exit code, stdout, stderr)."""
    capsys.readouterr()
    try:
        code = recommend.main([str(a) for a in args])
    except SystemExit as exc:  # argparse's usage errors
        code = exc.code
    out = capsys.readouterr()
    return code, out.out, out.err


def run_batch(capsys, reports: Path, fits: Path, out: Path, *extra) -> tuple[int, list, str]:
    code, stdout, err = cli(capsys, "--batch", reports, "--fit", fits, "--out", out, *extra)
    assert "Traceback" not in err, err
    return code, read_rows(out) if out.exists() else [], stdout + err


def without(rows: list[dict[str, str]], *columns: str) -> list[dict[str, str]]:
    return [{k: v for k, v in row.items() if k not in columns} for row in rows]


@pytest.fixture(scope="module")
def reports(tmp_path_factory) -> Path:
    """Two good 28-day reports, one too short and one without orders."""
    folder = tmp_path_factory.mktemp("reports")
    base = load_scenario("3c")
    for index, name in zip((40, 41), GOOD, strict=True):
        synthetic_account(base, index, DAYS).write(folder / f"{name}.csv")
    lines = (folder / f"{GOOD[0]}.csv").read_text().splitlines()
    (folder / f"{SHORT}.csv").write_text("\n".join(lines[:21]) + "\n")  # 20 days
    report = read_report(folder / f"{GOOD[1]}.csv")
    columns = {k: list(v) for k, v in report.values.items()}
    columns["orders"] = [0.0] * len(report.dates)
    write_report(folder / f"{NO_ORDERS}.csv", report.dates, columns)
    return folder


@pytest.fixture(scope="module")
def first(reports, tmp_path_factory):
    """The first batch: (exit code, rows, fits folder, printed text)."""
    folder = tmp_path_factory.mktemp("first")
    fits, out = folder / "fits", folder / "recs.csv"
    code = recommend.main(["--batch", str(reports), "--fit", str(fits), "--out", str(out)])
    return code, read_rows(out), fits


def copy_fits(fits: Path, folder: Path) -> Path:
    target = folder / "fits"
    shutil.copytree(fits, target)
    (target / ".queue.db").unlink(missing_ok=True)
    return target


def test_every_account_gets_a_row_and_a_bad_one_does_not_stop_the_batch(first, reports,
                                                                        capsys):
    code, rows, fits = first
    assert code == SOME_FAILED_EXIT == 3
    assert [row["account"] for row in rows] == ["'" + SHORT, *GOOD, NO_ORDERS]  # escaped
    by_name = {row["account"].lstrip("'"): row for row in rows}
    assert "at least 28" in by_name[SHORT]["error"] and by_name[SHORT]["status"] == "error"
    assert "orders" in by_name[NO_ORDERS]["error"]
    for name in (SHORT, NO_ORDERS):
        assert by_name[name]["recommended_target_roi"] == ""
        assert not (fits / name).exists()
    columns = list(rows[0])
    assert set(CSV_COLUMNS) <= set(columns) and columns[-len(EXTRA_COLUMNS):] == list(
        EXTRA_COLUMNS)
    for name in GOOD:
        row = by_name[name]
        assert row["status"] == "ok" and row["error"] == "" and row["fit"] == "fitted"
        assert (fits / name / "fit.json").is_file() and row["fit_dir"] == str(fits / name)
        fitted = json.loads((fits / name / "fit.json").read_text())["parameters"]
        assert 0 < int(row["identified"]) <= int(row["parameters"]) == len(fitted)
        assert row["breakeven_source"].startswith("the base scenario '3c'")
        for setting in ("recommended", "current", "static"):
            p10, p50, p90 = (float(row[f"{setting}_profit_{q}"]) for q in ("p10", "p50",
                                                                            "p90"))
            assert p10 <= p50 <= p90
    # the row is recommend --fit's answer for that account and its fit
    name = GOOD[0]
    code, out, err = cli(capsys, "--history", reports / f"{name}.csv", "--fit", fits / name,
                         "--json")
    assert code == 0, err
    single = json.loads(out)
    row = by_name[name]
    assert float(row["recommended_target_roi"]) == pytest.approx(
        single["policy"]["recommended"]["target_roi"], abs=0.005)
    assert float(row["breakeven_roi"]) == pytest.approx(
        single["forecast"]["fit"]["breakeven_roi"], abs=5e-4)
    for setting in ("recommended", "current", "static"):
        profit = single["forecast"]["settings"][setting]["summary"]["profit"]
        for q in ("p10", "p50", "p90"):
            assert float(row[f"{setting}_profit_{q}"]) == pytest.approx(profit[q], abs=0.005)


def test_a_second_run_reuses_the_fits_and_a_stale_one_is_refitted(first, reports, tmp_path,
                                                                  capsys):
    _, rows, fits = first
    fits = copy_fits(fits, tmp_path)
    written = {name: (fits / name / "fit.json").stat().st_mtime_ns for name in GOOD}
    code, again, _ = run_batch(capsys, reports, fits, tmp_path / "again.csv")
    assert code == 3
    assert [row["fit"] for row in again if row["status"] == "ok"] == ["reused", "reused"]
    assert without(again, "fit", "fit_dir") == without(rows, "fit", "fit_dir")
    assert {n: (fits / n / "fit.json").stat().st_mtime_ns for n in GOOD} == written
    # the same account with another report (a break-even column added): refitted, and the
    # report's break-even ROI used
    changed = tmp_path / "reports"
    shutil.copytree(reports, changed)
    report = read_report(changed / f"{GOOD[1]}.csv")
    columns = {k: list(v) for k, v in report.values.items()}
    columns["breakeven_roi"] = [2.9] * len(report.dates)
    write_report(changed / f"{GOOD[1]}.csv", report.dates, columns)
    code, third, _ = run_batch(capsys, changed, fits, tmp_path / "third.csv")
    by_name = {row["account"]: row for row in third}
    assert code == 3 and by_name[GOOD[0]]["fit"] == "reused"
    assert by_name[GOOD[1]]["fit"] == "refitted: a fit of another report (or another version " \
                                      "of it)"
    assert by_name[GOOD[1]]["breakeven_roi"] == "2.900"
    assert by_name[GOOD[1]]["breakeven_source"].startswith("the report's breakeven_roi")
    assert (fits / GOOD[1] / "fit.json").stat().st_mtime_ns != written[GOOD[1]]
    stored = json.loads((fits / GOOD[1] / "fit.json").read_text())
    assert stored["inputs"]["breakeven_roi"] == 2.9 and stored["margin"]["source"].startswith(
        "--breakeven-roi")


def test_a_fit_is_current_only_for_its_report_and_options(first, reports):
    _, _, fits = first
    report = reports / f"{GOOD[0]}.csv"
    assert fit_is_current(fits / GOOD[0], report, CalibrationInputs()) == (
        True, "a fit of this report with these options")
    current, why = fit_is_current(fits / GOOD[0], report, CalibrationInputs(margin=0.3))
    assert not current and why == "a fit made with other options (margin)"
    current, why = fit_is_current(fits / GOOD[0], reports / f"{GOOD[1]}.csv",
                                  CalibrationInputs())
    assert not current and "another report" in why
    assert fit_is_current(fits / "nothing", report, CalibrationInputs()) == (False,
                                                                              "no fit yet")


def test_the_break_even_comes_from_the_report_then_the_command_line_then_the_base(reports):
    settings = BatchSettings("playbook")
    report = read_report(reports / f"{GOOD[0]}.csv")
    inputs, source, given = account_inputs(report, settings)
    assert (inputs.margin, inputs.breakeven_roi, given) == (None, None, None)
    assert "base scenario '3c'" in source
    margin = BatchSettings("playbook", inputs=CalibrationInputs(margin=0.3))
    assert account_inputs(report, margin)[1:] == ("--margin 0.3 and the fitted refund rate",
                                                  None)
    given = BatchSettings("playbook", inputs=CalibrationInputs(breakeven_roi=3.5))
    assert account_inputs(report, given)[1:] == ("--breakeven-roi", 3.5)
    report.values["breakeven_roi"] = report.values["spend"] * 0 + 2.5
    inputs, source, value = account_inputs(report, given)
    assert (inputs.breakeven_roi, inputs.margin, value) == (2.5, None, 2.5)
    assert source.startswith("the report's breakeven_roi column")


def queue_settings() -> BatchSettings:
    """What the command line below builds (the study's identity)."""
    return BatchSettings(str(recommend.shipped_policy("profit")), RecommendOptions(),
                         CalibrationInputs())


@pytest.mark.slow
def test_two_workers_over_sqlite_give_the_same_rows_as_one(first, reports, tmp_path, capsys):
    _, rows, fits = first
    fits = copy_fits(fits, tmp_path)
    url = f"sqlite:///{tmp_path / 'queue.db'}"
    code, shared, text = run_batch(capsys, reports, fits, tmp_path / "shared.csv",
                                   "--workers", "2", "--storage", url, "--study-name", "b1")
    assert code == 3, text
    assert "exited with code" not in text  # the spawned worker did not die
    assert without(shared, "fit", "fit_dir") == without(rows, "fit", "fit_dir")
    trials = optuna.load_study(study_name="b1", storage=url).trials
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 4
    assert sorted(t.user_attrs[SLOT_ATTR] for t in trials) == [0, 1, 2, 3]
    assert "created batch 'b1' (4 accounts)" in text
    # the same command again: the finished batch is joined and the CSV written again
    code, resumed, text = run_batch(capsys, reports, fits, tmp_path / "resumed.csv",
                                    "--storage", url, "--study-name", "b1")
    assert code == 3 and resumed == shared and "joined batch 'b1'" in text
    assert len(optuna.load_study(study_name="b1", storage=url).trials) == 4  # none ran again
    # other reports under the same name: refused, naming what differs
    fewer = tmp_path / "fewer"
    shutil.copytree(reports, fewer)
    (fewer / f"{NO_ORDERS}.csv").unlink()
    code, out, err = cli(capsys, "--batch", fewer, "--fit", fits, "--out", tmp_path / "x.csv",
                         "--storage", url, "--study-name", "b1")
    assert code == 2 and "batch 'b1' exists with other reports or settings (differs in: " \
        "accounts)" in err, err


@pytest.mark.slow
def test_a_batch_over_postgresql_and_a_worker_joining_it(first, reports, tmp_path, capsys,
                                                         postgres_url):
    """The queue on a PostgreSQL server (workers on several machines): the same rows; a
    --join worker of the finished batch runs nothing and writes no CSV."""
    _, rows, fits = first
    fits = copy_fits(fits, tmp_path)
    name = f"pg-{uuid.uuid4().hex[:8]}"
    code, shared, text = run_batch(capsys, reports, fits, tmp_path / "pg.csv", "--storage",
                                   postgres_url, "--study-name", name)
    assert code == 3, text
    assert without(shared, "fit", "fit_dir") == without(rows, "fit", "fit_dir")
    password = make_url(postgres_url).password
    assert not password or password not in text  # the storage's password is not printed
    for account in GOOD:
        assert not password or password not in (fits / account / "fit.json").read_text()
    code, out, err = cli(capsys, "--batch", reports, "--fit", fits, "--storage", postgres_url,
                         "--study-name", name, "--join")
    assert code == 0 and "this worker ran 0 account(s)" in out, err
    assert not (ROOT / "recommendations.csv").exists()


@pytest.mark.slow
def test_a_dead_workers_account_is_retried(first, reports, tmp_path, capsys):
    """An account whose worker went silent is failed once its heartbeat is stale and run
    again (same slot) by the command, which then writes every row."""
    _, rows, fits = first
    fits = copy_fits(fits, tmp_path)
    url = f"sqlite:///{tmp_path / 'queue.db'}"
    fast = HeartbeatSettings(interval_s=1, grace_s=3)
    storage = open_storage(url, fast)
    create_or_join(storage, "dead", queue_spec(batch_accounts(reports), queue_settings()))
    dead = TrialQueue(storage, "dead", lambda slot: optuna.load_study(
        study_name="dead", storage=storage), fast, log=lambda line: None)
    assert dead.claim() is not None  # claimed, heartbeat recorded once, then silence
    code, after, text = run_batch(capsys, reports, fits, tmp_path / "after.csv", "--storage",
                                  url, "--study-name", "dead", *FAST)
    assert code == 3, text
    assert "joined batch 'dead'" in text and "retry of trial 0" in text
    assert without(after, "fit", "fit_dir") == without(rows, "fit", "fit_dir")
    trials = optuna.load_study(study_name="dead", storage=url).trials
    killed, retry = trials[0], trials[-1]
    assert killed.state == TrialState.FAIL and retry.state == TrialState.COMPLETE
    assert retry.system_attrs["failed_trial"] == killed.number
    assert retry.user_attrs[ACCOUNT_ATTR] == killed.user_attrs[ACCOUNT_ATTR] == SHORT
    assert retry.user_attrs[ROW_ATTR]["status"] == "error"  # the account's own error


@pytest.mark.parametrize("args, message", [
    (["--batch", "{reports}", "--workers", "2", "--out", "{tmp}/r.csv"],
     "only with --batch REPORTS --fit FITS"),
    (["--history", "{reports}/shop_a.csv", "--margin", "0.3"],
     "only with --batch REPORTS --fit FITS"),
    (["--batch", "{reports}", "--fit", "{fits}/shop_a", "--out", "{tmp}/r.csv"],
     "holds a single calibration"),
    (["--batch", "{reports}", "--fit", "{tmp}/f", "--out", "{tmp}/r.csv", "--margin", "0.3",
      "--breakeven-roi", "3"], "give one"),
    (["--batch", "{reports}", "--fit", "{tmp}/f", "--out", "{tmp}/r.csv", "--base", "nope"],
     "--base"),
    (["--batch", "{reports}", "--fit", "{tmp}/f", "--out", "{tmp}/no/r.csv"],
     "does not exist"),
    (["--batch", "{reports}", "--fit", "{tmp}/f", "--join"], "--join: give the --study-name"),
    (["--batch", "{reports}", "--fit", "{tmp}/f", "--join", "--study-name", "none"],
     "no batch 'none'"),
    (["--batch", "{reports}", "--fit", "{tmp}/f", "--out", "{tmp}/r.csv", "--workers", "2",
      "--heartbeat", "5", "--grace", "5"], "must exceed --heartbeat"),
    (["--batch", "{reports}", "--fit", "{tmp}/f", "--out", "{tmp}/r.csv", "--grace", "9"],
     "only with a queue"),
], ids=["workers-without-fit", "margin-without-batch", "one-calibration", "margin-and-roi",
        "base", "out-folder", "join-without-name", "join-nothing", "grace",
        "grace-without-queue"])
def test_bad_input_is_one_line_and_exit_code_2(first, reports, tmp_path, capsys, args,
                                               message):
    _, _, fits = first
    argv = [a.replace("{reports}", str(reports)).replace("{fits}", str(fits)).replace(
        "{tmp}", str(tmp_path)) for a in args]
    code, out, err = cli(capsys, *argv)
    assert code == 2 and message in err and "Traceback" not in err, err
    assert not (tmp_path / "r.csv").exists()


def test_the_calibrate_cli_records_what_the_batch_checks(first):
    """A fit written by the batch holds the same files as calibrate's, plus its inputs."""
    _, _, fits = first
    assert sorted(p.name for p in (fits / GOOD[0]).iterdir()) == [
        "fit.json", "scenario.yaml", "validation.json", "validation.png"]
    stored = json.loads((fits / GOOD[0] / "fit.json").read_text())
    assert stored["inputs"]["base"] == "3c" and len(stored["inputs"]["report_sha256"]) == 64
    assert stored["command"][:2] == ["scripts/recommend.py", "--batch"]
    assert os.path.basename(stored["command"][2]).startswith("reports")
