"""recommend against edited or malformed manifests, closed pipes, bad --out paths and
implausible reports; and what the serving path loads (issue #17)."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from agents.serving.report import MAX_DAILY_CNY, MAX_REPORT_DAYS
from tests.test_recommend import EN, ZH, cli

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "models" / "profit"


def shipped_copy(tmp_path: Path, edit=None) -> Path:
    """A copy of the shipped profit policy, its policy.json edited by ``edit(manifest)``."""
    copy = tmp_path / "policy"
    shutil.copytree(SHIPPED, copy)
    if edit is not None:
        manifest = json.loads((copy / "policy.json").read_text(encoding="utf-8"))
        edit(manifest)
        (copy / "policy.json").write_text(json.dumps(manifest), encoding="utf-8")
    return copy / "policy.onnx"


def fourteen_days(tmp_path: Path) -> Path:
    """The last 14 days of the English example (the policy's minimum history)."""
    lines = EN.read_text(encoding="utf-8").splitlines()
    path = tmp_path / "beauty_shop.csv"
    path.write_text("\n".join([lines[0], *lines[-14:]]) + "\n", encoding="utf-8")
    return path


# ------------------------------------------------------------------------ 2: integrity
def _scenario_edit(m):  # the edit: a margin and a step size the policy never had
    m["scenario_config"].update(margin=0.6, target_max_step=2.0)


EDITS = {
    "scenario_config": (_scenario_edit, "scenario_config.margin"),
    "action_mapping": (lambda m: m["action_mapping"].update(target_max_step=2.0),
                       "action_mapping.target_max_step"),
    "an anchor": (lambda m: m["anchors"]["beauty"].update(target_over_breakeven=3.0),
                  "anchors.beauty.target_over_breakeven"),
    "acts_while_learning": (lambda m: m.update(acts_while_learning=False),
                            "acts_while_learning"),
    "scenario_hash": (lambda m: m.update(scenario_hash="0" * 12), "scenario_hash"),
    "a field added": (lambda m: m.update(target_max_step=2.0), "target_max_step"),
    "the policy's name": (lambda m: m["source"].update(run_name="other"), "source.run_name"),
}


@pytest.mark.parametrize("case", list(EDITS))
def test_edited_manifest_exits_2_naming_the_field(tmp_path, capsys, case):
    edit, field = EDITS[case]
    onnx = shipped_copy(tmp_path, edit)
    code, out, err = cli(capsys, "--policy", onnx, "--history", fourteen_days(tmp_path),
                         "--scenario", "beauty")
    assert code == 2 and out == "", err
    assert f"manifest field {field} was edited after export" in err and "policy.json" in err


def test_unedited_copy_still_serves(tmp_path, capsys):
    code, out, err = cli(capsys, "--policy", shipped_copy(tmp_path), "--history",
                         fourteen_days(tmp_path), "--scenario", "beauty", "--json")
    assert code == 0, err
    assert json.loads(out)["policy"]["anchor"]["scenario"] == "beauty"


def test_scenario_hash_is_recomputed_even_when_the_graph_agrees(tmp_path, capsys):
    """A graph re-embedded with a wrong scenario_hash (a forger's first step) is caught by
    recomputing the hash of scenario_config."""
    from agents.export.graph import embed_manifest
    from agents.serving.manifest import file_sha256

    onnx = shipped_copy(tmp_path)
    manifest = json.loads(onnx.with_name("policy.json").read_text(encoding="utf-8"))
    manifest["scenario_hash"] = "0" * 12
    embed_manifest(onnx, manifest)
    manifest["onnx_sha256"] = file_sha256(onnx)
    onnx.with_name("policy.json").write_text(json.dumps(manifest), encoding="utf-8")
    code, _, err = cli(capsys, "--policy", onnx, "--history", EN)
    assert code == 2 and "scenario_hash" in err and "hash of its scenario_config" in err, err


def test_a_format_1_manifest_asks_for_a_re_export(tmp_path, capsys):
    onnx = shipped_copy(tmp_path, lambda m: m.update(format_version=1))
    code, _, err = cli(capsys, "--policy", onnx, "--history", EN)
    assert code == 2 and "format_version 1" in err and "re-export" in err, err


# ---------------------------------------------------------------------------- 3: schema
def _set(key, value):
    return lambda m: m.update({key: value})


SCHEMA_CASES = {
    "source": (_set("source", "x"), "manifest field source must be an object"),
    "action_space": (_set("action_space", "full"),
                     "manifest field action_space must be an object"),
    "action_space.shape": (lambda m: m["action_space"].update(shape="7"),
                           "manifest field action_space.shape must be a list"),
    "feature_names": (_set("feature_names", "roi_d1"),
                      "manifest field feature_names must be a list of names"),
    "format_version": (_set("format_version", "2"), "format_version '2'"),
    "history_days_required": (_set("history_days_required", 14.5),
                              "manifest field history_days_required must be a whole number"),
    "source.run_name": (lambda m: m["source"].update(run_name=5),
                        "manifest field source.run_name must be a run name"),
    "scenario_config": (_set("scenario_config", [1, 2]),
                        "manifest field scenario_config must be an object"),
    "acts_while_learning": (_set("acts_while_learning", "yes"),
                            "manifest field acts_while_learning must be true or false"),
}


@pytest.mark.parametrize("case", list(SCHEMA_CASES))
def test_manifest_field_of_the_wrong_type_exits_2_naming_it(tmp_path, capsys, case):
    edit, expected = SCHEMA_CASES[case]
    code, out, err = cli(capsys, "--policy", shipped_copy(tmp_path, edit), "--history", EN)
    assert code == 2 and out == ""
    assert expected in err and "policy.json" in err, err


# ------------------------------------------------------------------ 5: pipes and --out
def test_output_into_a_closed_pipe_ends_quietly():
    """``recommend ... | head`` when head has already gone: no message, exit 141."""
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader has left before anything is written
    try:
        done = subprocess.run([sys.executable, "scripts/recommend.py", "--policy", "playbook",
                               "--history", str(EN), "--json"], cwd=ROOT, stdout=write_end,
                              stderr=subprocess.PIPE, text=True, timeout=120)
    finally:
        os.close(write_end)
    assert done.stderr == "" and done.returncode == 141, done.stderr


def test_output_piped_to_head_is_cut_quietly():
    done = subprocess.run(["bash", "-o", "pipefail", "-c",
                           f"{sys.executable} scripts/recommend.py --policy playbook --history "
                           f"{EN} --json | head -c 10 >/dev/null; exit ${{PIPESTATUS[0]}}"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert "Broken pipe" not in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert done.returncode in (0, 141)


def test_out_as_a_directory_exits_2_and_leaves_no_file(tmp_path, capsys):
    reports = tmp_path / "reports"
    reports.mkdir()
    shutil.copy(EN, reports / "shop.csv")
    folder = tmp_path / "out"
    folder.mkdir()
    before = sorted(tmp_path.rglob("*"))
    code, out, err = cli(capsys, "--policy", "playbook", "--batch", reports, "--out", folder)
    assert code == 2 and "--out is a directory" in err and "Errno" not in err, err
    assert sorted(tmp_path.rglob("*")) == before  # no stray .tmp
    code, _, err = cli(capsys, "--policy", "playbook", "--batch", reports, "--out",
                       tmp_path / "no_such" / "r.csv")
    assert code == 2 and "does not exist" in err and "Errno" not in err, err


def test_write_failure_leaves_no_temporary_file(tmp_path, monkeypatch):
    from agents.serving import output
    from agents.serving.errors import ServingError
    from agents.serving.loading import load_policy
    from agents.serving.recommend import RecommendOptions, recommend_files

    recs, _ = recommend_files(load_policy("playbook"), [EN], RecommendOptions())

    def refuse(src, dst):
        raise IsADirectoryError(21, "Is a directory", str(dst))

    monkeypatch.setattr(output.os, "replace", refuse)
    with pytest.raises(ServingError, match="cannot write the CSV \\(is a directory\\)"):
        output.write_batch_csv(recs, tmp_path / "r.csv")
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------- 5: implausible reports
def en_rows() -> list[list[str]]:
    return list(csv.reader(EN.read_text(encoding="utf-8").splitlines()))


def write_rows(path: Path, rows: list[list[str]]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        csv.writer(handle, lineterminator="\n").writerows(rows)
    return path


def test_a_day_beyond_the_plausible_maximum_is_refused_naming_the_row(tmp_path, capsys):
    rows = en_rows()
    rows[5][rows[0].index("gmv")] = "1e308"
    code, _, err = cli(capsys, "--policy", "playbook", "--history",
                       write_rows(tmp_path / "r.csv", rows))
    assert code == 2 and "row 6" in err and "column 'gmv'" in err, err
    assert f"plausible maximum {MAX_DAILY_CNY:g}" in err


def test_a_share_written_as_a_percentage_number_is_refused(tmp_path, capsys):
    rows = en_rows()
    rows[-1][rows[0].index("share_volume")] = "40"
    code, _, err = cli(capsys, "--policy", "playbook", "--history",
                       write_rows(tmp_path / "r.csv", rows))
    assert code == 2 and f"row {len(rows)}" in err and "share_volume" in err, err


def test_a_row_with_extra_cells_is_refused_naming_it(tmp_path, capsys):
    rows = en_rows()
    rows[3] = [*rows[3], "1234"]
    rows[4] = [*rows[4], ""]  # an empty trailing cell is harmless
    code, _, err = cli(capsys, "--policy", "playbook", "--history",
                       write_rows(tmp_path / "r.csv", rows))
    assert code == 2 and "row 4" in err and "beyond the header" in err, err


def test_a_history_longer_than_the_cap_is_refused(tmp_path, capsys):
    import datetime as dt

    rows = en_rows()
    header, template = rows[0], rows[1]
    first = dt.date(2000, 1, 1)
    days = [[(first + dt.timedelta(days=i)).isoformat(), *template[1:]]
            for i in range(MAX_REPORT_DAYS + 1)]
    code, _, err = cli(capsys, "--policy", "playbook", "--history",
                       write_rows(tmp_path / "r.csv", [header, *days]))
    assert code == 2 and f"row {MAX_REPORT_DAYS + 2}" in err, err
    assert f"more than {MAX_REPORT_DAYS} days" in err


# ------------------------------------------------------------------ 4: what serving loads
NEVER = ("torch", "stable_baselines3", "sb3_contrib", "cloudpickle", "numba", "llvmlite",
         "gymnasium", "yaml", "scipy", "onnx", "envs.simulator", "envs.market",
         "envs.qianchuan_env")


def fresh_process(body: str) -> list[str]:
    """Run ``body`` in a fresh interpreter whose pickle refuses to load anything; return
    the modules of :data:`NEVER` it loaded."""
    script = f"""
import json, pickle, sys
def refuse(*a, **k):
    raise AssertionError("pickle used on the serving path")
pickle.load = pickle.loads = pickle.Unpickler = refuse
{body}
print(json.dumps([m for m in {NEVER!r} if m in sys.modules]), file=sys.stderr)
"""
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stderr.strip().splitlines()[-1])


def test_serving_modules_load_only_numpy_onnxruntime_and_light_envs():
    modules = [p.stem for p in (ROOT / "agents" / "serving").glob("*.py")
               if p.stem not in ("__init__", "simulated")]  # simulated: examples, not serving
    body = "\n".join(f"import agents.serving.{m}" for m in modules)
    assert fresh_process(body) == []


@pytest.mark.parametrize("args", [
    ["--history", str(ZH)],
    ["--history", str(EN), "--json", "--objective", "gmv_floor"],
    ["--batch", "examples", "--out", "{tmp}/r.csv", "--json"],
], ids=["table", "json", "batch"])
def test_a_full_recommend_run_loads_no_heavy_module_and_never_unpickles(tmp_path, args):
    argv = ["recommend.py", *(a.replace("{tmp}", str(tmp_path)) for a in args)]
    body = f"""
import runpy
sys.argv = {argv!r}
try:
    runpy.run_path("scripts/recommend.py", run_name="__main__")
except SystemExit as exc:
    assert exc.code in (0, None), exc.code
"""
    assert fresh_process(body) == []
