"""The population benchmark: the shipped policy against static on synthetic accounts' true
markets (scripts/population_benchmark.py, agents/evaluation/population_benchmark.py)."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from agents.evaluation.population_benchmark import compare

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "models" / "profit"


def _script():
    spec = importlib.util.spec_from_file_location(
        "population_benchmark_cli", ROOT / "scripts" / "population_benchmark.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _record(index: int, values: list[float], market: str = "3c", base: str = "3c") -> dict:
    return {"index": index, "market": market, "base": base, "values": values}


def test_compare_counts_accounts_ahead_and_behind_on_their_paired_intervals():
    static = {1: _record(1, [100.0, 100.0, 100.0, 100.0]),
              2: _record(2, [100.0, 200.0, 300.0, 400.0]),
              3: _record(3, [1000.0, 1000.0, 1000.0, 1000.0])}
    policy = {1: _record(1, [110.0, 111.0, 112.0, 113.0]),  # ahead on every seed
              2: _record(2, [90.0, 230.0, 280.0, 410.0]),   # as often behind as ahead
              3: _record(3, [900.0, 901.0, 899.0, 900.0])}  # behind, by 10%
    c = compare(policy, static)
    assert c.accounts == 3
    assert (c.ahead, c.behind, c.behind_2pct) == (1, 1, 1)
    assert c.worst == (3, pytest.approx(-100.0))
    assert c.diff[0] == pytest.approx(np.mean([11.5, 2.5, -100.0]))
    assert c.diff[1] < c.diff[0] < c.diff[2]
    with pytest.raises(ValueError, match="seeds"):
        compare({1: _record(1, [1.0, 2.0])}, {1: _record(1, [1.0, 2.0, 3.0])})
    with pytest.raises(ValueError, match="no account"):
        compare({1: _record(1, [1.0, 2.0])}, {2: _record(2, [1.0, 2.0])})


def test_the_shipped_policy_on_the_population_is_kept_resumed_and_paired(tmp_path, capsys):
    """Two accounts, two seeds: the records are kept per policy; a rerun reads them; the same
    graph under another folder is measured alone and is level with the first to the CNY
    (every policy meets the same seeds of the same markets)."""
    pb = _script()
    out = tmp_path / "pop"
    assert pb.main(["--accounts", "2", "--seeds", "2", "--out", str(out)]) == 0
    first = capsys.readouterr().out
    assert "static: 0 accounts kept, 2 to play" in first
    kept = sorted((out / "profit" / "seeds2").rglob("account_*.json"))
    assert len(kept) == 4  # static and the policy, two accounts each
    values = {p: json.loads(p.read_text())["values"] for p in kept}
    assert all(len(v) == 2 and np.isfinite(v).all() for v in values.values())
    assert (out / "report_profit.md").is_file()

    copy = tmp_path / "copy"
    shutil.copytree(SHIPPED, copy)
    assert pb.main(["--accounts", "2", "--seeds", "2", "--out", str(out),
                    "--policies", str(SHIPPED), str(copy)]) == 0
    second = capsys.readouterr().out
    assert "static: 2 accounts kept, 0 to play" in second
    assert "copy-" in second and ": 0 accounts kept, 2 to play" in second
    assert {p: json.loads(p.read_text())["values"] for p in kept} == values  # not replayed
    pair = second[second.index("### copy-"):]
    assert "| all | 2 | +0.0k [+0.0, +0.0] | 0 | 0 | 0 |" in pair


def test_a_rule_is_played_on_the_accounts_own_break_even_and_compared(tmp_path, capsys):
    """--rules static_rule: the one-line rule is its own contender (target k x the account's
    break-even, not the base's settings), and the policy is compared with it."""
    pb = _script()
    out = tmp_path / "pop"
    assert pb.main(["--accounts", "2", "--seeds", "2", "--rules", "static_rule", "--out",
                    str(out)]) == 0
    text = capsys.readouterr().out
    assert "### static_rule - static" in text and " - static_rule\n" in text
    folder = out / "profit" / "seeds2"
    rule = {p.name: json.loads(p.read_text())["values"] for p in (folder / "static_rule").glob("*")}
    held = {p.name: json.loads(p.read_text())["values"] for p in (folder / "static").glob("*")}
    assert rule.keys() == held.keys() and len(rule) == 2
    assert all(rule[k] != held[k] for k in rule)


def test_an_unknown_rule_is_refused_by_the_parser(capsys):
    with pytest.raises(SystemExit) as exit_:
        _script().main(["--rules", "oracle"])
    assert exit_.value.code == 2 and "invalid choice: 'oracle'" in capsys.readouterr().err


@pytest.mark.parametrize("args,words", [
    (["--objective", "gmv_floor", "--policies", str(SHIPPED)], "trained for 'profit'"),
    (["--policies", str(SHIPPED), str(SHIPPED)], "the same graph is given twice"),
    (["--policies", "no/such/policy.onnx"], "no such ONNX export"),
    (["--accounts", "1"], "at least 2 accounts"),
    (["--seeds", "1"], "--seeds must be at least 2"),
])
def test_bad_arguments_exit_2_naming_what_is_wrong(tmp_path, capsys, args, words):
    assert _script().main([*args, "--accounts", "2", "--out", str(tmp_path)]
                          if "--accounts" not in args else [*args, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert words in err and "Traceback" not in err
