"""recommend: report reading, history -> features equality with the env, guards, bad input."""

from __future__ import annotations

import csv
import datetime as dt
import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from agents.policies import make_policy
from agents.serving.errors import ServingError
from agents.serving.guards import Settings, apply_guards
from agents.serving.inputs import AccountDefaults, history_inputs, observations, parse_promotions
from agents.serving.recommend import RecommendOptions, recommend_files
from agents.serving.report import parse_number, read_report, write_report
from agents.serving.simulated import dated_account, simulate_account
from envs.actions import action_dim
from envs.config import load_scenario
from envs.history import HISTORY_DAYS_REQUIRED

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
EN, ZH = EXAMPLES / "report_en.csv", EXAMPLES / "report_zh.csv"
ZH_HEADERS = {"date": "日期", "spend": "消耗(元)", "gmv": "支付GMV", "orders": "成交订单数",
              "target_roi": "支付ROI目标", "budget": "日预算", "refunds": "退款金额",
              "settled_gmv": "结算GMV", "balance": "账户余额", "learning": "学习期",
              "learn_failed": "学习失败", "interrupted": "投放中断",
              "plan_launch_date": "计划创建日期", "creative_date": "素材更新日期",
              "breakeven_roi": "保本ROI"}


def load_cli():
    spec = importlib.util.spec_from_file_location("recommend_cli",
                                                  ROOT / "scripts" / "recommend.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


CLI = load_cli()


def cli(capsys, *args: str) -> tuple[int, str, str]:
    """scripts/recommend.py in this process: (exit code, stdout, stderr)."""
    code = CLI.main([str(a) for a in args])
    out = capsys.readouterr()
    return code, out.out, out.err


class RandomPolicy:
    """Random actions in [-1, 1]: moves target and budget so the history varies."""

    def __init__(self, dim: int, seed: int = 0):
        self.dim, self.rng = dim, np.random.default_rng(seed)

    def predict(self, obs, deterministic=True):
        return self.rng.uniform(-1, 1, (len(obs), self.dim)), None


class FixedPolicy:
    """Always the same action: a known raw answer for the guard tests."""

    name = "fixed"

    def __init__(self, action, space="basic"):
        self.action = np.asarray(action, dtype=float)
        self.config = load_scenario("3c", action_space=space)

    def predict(self, obs, deterministic=True):
        return np.tile(self.action, (len(obs), 1)), None


def read_back(path: Path, promo_dates: str, peak_length: int,
              whole_site: bool = True) -> np.ndarray:
    """The observation recommend builds from a report (``whole_site``: the policy's scenario
    has the plan, as the default's does)."""
    report = read_report(path)
    rows, ctx, _ = history_inputs(report, AccountDefaults(99.0, (1.0, 0.0, 0.0)),
                                  parse_promotions(promo_dates, peak_length))
    return observations([rows], [ctx], whole_site)[0]


# ------------------------------------------------------------------- history -> features
@pytest.mark.parametrize("days, space, history_days", [
    (0, "basic", 14),    # launch day: the pre-launch history, learning starts
    (9, "basic", 14),    # learning period
    (50, "basic", 14),   # promotion ahead (peak on day 56)
    (57, "full", 20),    # on the peak; plan shares moving; a longer report
    (62, "basic", 14),   # after the peak
])
def test_report_of_a_simulated_episode_gives_the_env_observation(tmp_path, days, space,
                                                                 history_days):
    cfg = load_scenario("3c", action_space=space, history_days=history_days)
    policy = RandomPolicy(action_dim(cfg), seed=days)
    account = simulate_account(cfg, seed=10000 + days, days=days, policy=policy)
    for headers, encoding in ((None, "utf-8"), (ZH_HEADERS, "gbk")):
        path = write_report(tmp_path / f"{encoding}.csv", account.dates, account.columns(),
                            headers=headers, encoding=encoding)
        got = read_back(path, account.promo_dates, cfg.promo_peak_length_days)
        np.testing.assert_allclose(got, account.observation, rtol=1e-6, atol=1e-6)


def test_gymnasium_env_observation_equals_the_report_read_back(tmp_path):
    from envs.qianchuan_env import QianchuanBiddingEnv

    env = QianchuanBiddingEnv("3c")
    env.reset(seed=3)
    rng = np.random.default_rng(3)
    for _ in range(30):
        obs, *_ = env.step(rng.uniform(-1, 1, 2))
    account = dated_account(env.sim)
    np.testing.assert_array_equal(account.observation, obs)
    path = write_report(tmp_path / "env.csv", account.dates, account.columns())
    got = read_back(path, account.promo_dates, env.config.promo_peak_length_days)
    np.testing.assert_allclose(got, obs, rtol=1e-6, atol=1e-6)


# ----------------------------------------------------------------------------- examples
def test_examples_are_the_shipped_shapes():
    assert ZH.read_bytes()[:4] != b"\xef\xbb\xbf"
    ZH.read_bytes().decode("gbk")  # GBK, Chinese headers
    en, zh = read_report(EN), read_report(ZH)
    assert (en.encoding, zh.encoding) == ("utf-8", "gbk")
    assert len(en.dates) >= 20 and len(zh.dates) >= 20
    assert zh.mapping["date"] == "日期" and zh.mapping["spend"] == "消耗(元)"
    assert zh.mapping["gmv"] == "成交金额(元)" and "支付ROI" in zh.ignored
    assert any("合计" in note for note in zh.notes)  # the total row is skipped, and said so


@pytest.mark.parametrize("path", [EN, ZH], ids=["en", "zh"])
def test_playbook_answers_an_example_with_the_expected_fields(capsys, path):
    code, out, err = cli(capsys, "--policy", "playbook", "--history", path, "--json")
    assert code == 0, err
    rec = json.loads(out)
    report = read_report(path)
    assert rec["decision_date"] == (report.dates[-1] + dt.timedelta(days=1)).isoformat()
    assert rec["current"]["target_roi"] == report.values["target_roi"][-1]
    assert rec["current"]["budget_cny"] == report.values["budget"][-1]
    final = rec["policy"]["recommended"]
    assert final["target_roi"] == round(final["target_roi"], 2)
    assert 0.01 <= final["target_roi"] <= 100 and final["budget_cny"] >= 300
    assert rec["policy"]["name"] == "playbook" and rec["playbook"] is None
    assert rec["mapping"]["date"] == ("日期" if path == ZH else "date")
    assert set(rec["policy"]["change"]) == {"target_roi", "budget_cny"}


@pytest.fixture(scope="module")
def exported(tiny_run, tmp_path_factory) -> Path:
    from agents.export.exporter import export_run

    return export_run(tiny_run, "best", out_dir=tmp_path_factory.mktemp("export"))


@pytest.mark.slow
@pytest.mark.parametrize("path", [EN, ZH], ids=["en", "zh"])
def test_trained_policy_answers_an_example_beside_the_playbook(capsys, exported, path):
    onnx = exported / "policy.onnx"
    code, out, err = cli(capsys, "--policy", onnx, "--history", path, "--json")
    assert code == 0, err
    rec = json.loads(out)
    assert rec["policy"]["name"] == "tiny:best"
    assert len(rec["policy"]["action"]) == 7  # the default (full) space, whole-site's weight in
    assert rec["playbook"]["name"] == "playbook"
    for answer in (rec["policy"], rec["playbook"]):
        assert {"raw", "recommended", "change", "guards"} <= set(answer)
    code, table, _ = cli(capsys, "--policy", onnx, "--history", path)
    assert code == 0
    for text in ("payment-ROI target", "daily budget (CNY)", "playbook", "current",
                 "recommended", "change", "columns:"):
        assert text in table


@pytest.mark.slow
def test_trained_policy_enters_the_envs_decision(tmp_path, exported):
    """A raw ONNX policy's recommendation is the env's decision for its action."""
    from agents.serving.onnx_policy import OnnxPolicy
    from envs.actions import to_decision
    from tests.test_serving_env_parity import (
        ACCOUNTS,
        assert_is_env_decision,
        recommend_account,
        simulated,
    )

    policy = OnnxPolicy(exported / "policy.onnx")
    sim = simulated(policy.config)
    for i in range(ACCOUNTS):
        answer = recommend_account(policy, dated_account(sim, account=i), tmp_path)
        action = np.tile(answer["action"], (ACCOUNTS, 1))
        assert_is_env_decision(answer, to_decision(policy.config, sim.state, action), i)


HEAVY = ("torch", "stable_baselines3", "sb3_contrib", "cloudpickle", "numba", "llvmlite")


def recommend_in_fresh_process(onnx: Path, report: Path,
                               watch: tuple[str, ...]) -> subprocess.CompletedProcess:
    """``scripts/recommend.py --policy onnx --history report --json`` in a fresh interpreter
    that refuses to unpickle; its last stderr line is ``{"heavy": [...]}``, the modules of
    ``watch`` it loaded."""
    script = f"""
import json, pickle, runpy, sys
def refuse(*a, **k):
    raise AssertionError("pickle used on the serving path")
pickle.load = pickle.loads = refuse
sys.argv = ["recommend.py", "--policy", {str(onnx)!r}, "--history", {str(report)!r}, "--json"]
try:
    runpy.run_path({str(ROOT / "scripts" / "recommend.py")!r}, run_name="__main__")
except SystemExit as exc:
    assert exc.code in (0, None), exc.code
heavy = [m for m in {tuple(watch)!r} if m in sys.modules]
print(json.dumps({{"heavy": heavy}}), file=sys.stderr)
"""
    return subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                          text=True)


@pytest.mark.slow
def test_serving_path_imports_neither_torch_nor_sb3_nor_unpickles(exported):
    done = recommend_in_fresh_process(exported / "policy.onnx", ZH, HEAVY)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stderr.strip().splitlines()[-1]) == {"heavy": []}
    assert json.loads(done.stdout)["policy"]["name"] == "tiny:best"


# ------------------------------------------------------------------------------- guards
def settings(target, budget, n=1):
    return Settings(np.full(n, float(target)), np.full(n, float(budget)),
                    np.tile([0.4, 0.0, 0.6], (n, 1)), np.zeros(n, dtype=bool))


def guard(raw_target, raw_budget, learning=False, failed=False, edits=0, acts=False,
          current=(3.0, 12000.0)):
    raw, cur = settings(raw_target, raw_budget), settings(*current)
    final, notes = apply_guards(raw, cur, np.array([learning]), np.array([failed]), edits, acts)
    return final.target_roi[0], final.budget_cny[0], {n.guard: n for n in notes[0]}


def test_target_range_and_two_decimals():
    target, _, notes = guard(150.0, 12000.0)
    assert target == 100.0 and notes["target_range"].raw == 150.0
    target, _, notes = guard(0.001, 12000.0)
    assert target == 0.01 and "0.01-100" in notes["target_range"].reason
    target, _, notes = guard(3.14159, 12000.0)
    assert target == 3.14 and notes["target_two_decimals"].value == 3.14
    assert "two decimals" in notes["target_two_decimals"].reason
    assert guard(3.25, 12000.0)[2] == {}  # already a platform value: no guard


def test_budget_minimum():
    _, budget, notes = guard(3.0, 120.0)
    assert budget == 300.0 and notes["budget_minimum"].raw == 120.0
    assert "300 CNY" in notes["budget_minimum"].reason


def test_at_most_two_target_edits_a_day():
    target, _, notes = guard(3.5, 12000.0, edits=2)
    assert target == 3.0 and "2 target edits already" in notes["edit_limit"].reason
    assert guard(3.5, 12000.0, edits=1)[0] == 3.5  # the second edit is allowed
    assert "edit_limit" not in guard(3.001, 12000.0, edits=2)[2]  # rounds to no edit


def test_hold_while_learning_unless_the_rule_acts_or_learning_failed():
    target, budget, notes = guard(3.5, 15000.0, learning=True)
    assert (target, budget) == (3.0, 12000.0)
    assert notes["learning_hold"].setting in ("target_roi", "budget_cny")
    assert guard(3.5, 15000.0, learning=True, acts=True)[:2] == (3.5, 15000.0)
    assert guard(3.5, 15000.0, learning=True, failed=True)[:2] == (3.5, 15000.0)


def test_full_answer_holds_shares_and_refresh_while_learning():
    raw, cur = settings(3.0, 12000.0), settings(3.0, 12000.0)
    raw.shares[:] = [0.2, 0.5, 0.3, 0.0]
    raw.refresh[:] = True
    final, notes = apply_guards(raw, cur, np.array([True]), np.array([False]))
    np.testing.assert_array_equal(final.shares, cur.shares)
    assert not final.refresh[0]
    assert {n.setting for n in notes[0]} >= {"share_settlement_roi", "creative_refresh"}


def test_guards_in_the_output_say_what_changed_and_why(tmp_path):
    rows = list(csv.reader(EN.open(encoding="utf-8")))
    learning = rows[0].index("learning")
    rows[-1][learning] = "1"
    held = tmp_path / "learning.csv"
    with held.open("w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows(rows)
    up = FixedPolicy([1.0, -1.0])  # target x1.25, budget /1.5
    options = RecommendOptions(compare=None)
    rec = recommend_files(up, [EN], options)[0][0].to_dict()
    current = rec["current"]
    assert rec["policy"]["raw"]["target_roi"] == pytest.approx(current["target_roi"] * 1.25)
    assert rec["policy"]["recommended"]["budget_cny"] == pytest.approx(
        current["budget_cny"] / 1.5)
    rec = recommend_files(up, [EN], RecommendOptions(compare=None, edits_today=2))[0][0]
    guards = {g["guard"]: g for g in rec.policy["guards"]}
    assert rec.policy["recommended"]["target_roi"] == rec.current["target_roi"]
    assert guards["edit_limit"]["setting"] == "target_roi"
    rec = recommend_files(up, [held], options)[0][0]
    assert rec.current["learning"]
    assert {g["guard"] for g in rec.policy["guards"]} == {"learning_hold"}
    assert rec.policy["recommended"]["budget_cny"] == rec.current["budget_cny"]
    rec = recommend_files(up, [held], RecommendOptions(compare=None,
                                                       act_while_learning=True))[0][0]
    assert rec.policy["recommended"]["target_roi"] != rec.current["target_roi"]


# ----------------------------------------------------------------------- report formats
def test_numbers_as_reports_write_them():
    p = Path("r.csv")
    assert parse_number("1,234.5", p, 2, "spend") == 1234.5
    assert parse_number("¥1,234", p, 2, "spend") == 1234.0
    assert parse_number("12%", p, 2, "share") == pytest.approx(0.12)
    assert parse_number(" 7 ", p, 2, "orders") == 7.0
    assert parse_number("-", p, 2, "settled_gmv") is None
    assert parse_number(3, p, 2, "orders") == 3.0


def test_xlsx_bom_and_tab_separated_reports_read_the_same(tmp_path):
    import openpyxl

    reference = read_report(ZH)
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["千川日报"])  # a title line above the header
    with ZH.open(encoding="gbk") as f:
        for i, row in enumerate(csv.reader(f)):
            if i and row[0] != "合计":
                row[0] = dt.datetime.fromisoformat(row[0])  # Excel dates
            sheet.append(row)
    book.save(tmp_path / "zh.xlsx")
    text = ZH.read_bytes().decode("gbk")
    (tmp_path / "bom.csv").write_bytes(text.encode("utf-8-sig"))
    tabbed = "\n".join("\t".join(r) for r in csv.reader(text.splitlines()))
    (tmp_path / "tab.csv").write_text(tabbed, encoding="utf-8")
    for name, encoding in (("zh.xlsx", "xlsx"), ("bom.csv", "utf-8-sig"), ("tab.csv", "utf-8")):
        report = read_report(tmp_path / name)
        assert report.encoding == encoding and report.dates == reference.dates
        for key, values in reference.values.items():
            np.testing.assert_array_equal(report.values[key], values, err_msg=key)


# --------------------------------------------------------------------------- bad input
def edited_report(tmp_path: Path, edit, name="bad.csv") -> Path:
    """report_en.csv with ``edit(rows)`` applied (rows[0] is the header)."""
    rows = list(csv.reader(EN.open(encoding="utf-8")))
    edit(rows)
    path = tmp_path / name
    with path.open("w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows(rows)
    return path


def set_cell(rows, line, column, value):
    rows[line - 1][rows[0].index(column)] = value


BAD_REPORTS = {
    "missing column": (lambda r: [row.pop(i) for i in [r[0].index("budget")] for row in r],
                       ["missing column(s): budget", "row 1"]),
    "too few days": (lambda r: r.__delitem__(slice(1, 1 + len(r) - HISTORY_DAYS_REQUIRED)),
                     ["13 day(s) of history", f"at least {HISTORY_DAYS_REQUIRED}"]),
    "non-numeric": (lambda r: set_cell(r, 5, "spend", "abc"),
                    ["row 5", "column 'spend'", "expected a number, got 'abc'"]),
    "negative": (lambda r: set_cell(r, 7, "gmv", "-12.5"),
                 ["row 7", "column 'gmv'", "negative value"]),
    "missing value": (lambda r: set_cell(r, 4, "orders", ""), ["row 4", "column 'orders'"]),
    "bad flag": (lambda r: set_cell(r, 3, "learning", "maybe"), ["row 3", "'learning'"]),
    "duplicated date": (lambda r: set_cell(r, 6, "date", r[4][0]),
                        ["row 6", "column 'date'", "duplicated date"]),
    "unsorted dates": (lambda r: r.__setitem__(slice(5, 7), [r[6], r[5]]),
                       ["row 7", "not sorted"]),
    "missing day": (lambda r: r.__delitem__(8), ["row 9", "missing day(s)"]),
    "bad date": (lambda r: set_cell(r, 2, "date", "yesterday"), ["row 2", "expected a date"]),
    "zero target": (lambda r: set_cell(r, 21, "target_roi", "0"), ["row 21", "must be > 0"]),
}


@pytest.mark.parametrize("case", list(BAD_REPORTS))
def test_bad_report_names_file_row_column_and_exits_2(tmp_path, capsys, case):
    edit, expected = BAD_REPORTS[case]
    path = edited_report(tmp_path, edit)
    code, out, err = cli(capsys, "--policy", "playbook", "--history", path)
    assert code == 2 and out == ""
    assert err.startswith(f"error: {path}")
    for text in expected:
        assert text in err, err


@pytest.mark.parametrize("content, name, expected", [
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "image.csv", "not a text table"),
    (b'{"spend": [1, 2, 3]}', "data.csv", "not a daily report table"),
    (b"", "empty.csv", "not a daily report table"),
    ("日期,备注\n2025-01-01,无\n".encode("gbk"), "notes.csv", "not a daily report table"),
    (b"date,spend,gmv\n", "xlsx.xlsx", "not a readable .xlsx"),
])
def test_a_file_that_is_not_a_table_exits_2(tmp_path, capsys, content, name, expected):
    path = tmp_path / name
    path.write_bytes(content)
    code, _, err = cli(capsys, "--policy", "playbook", "--history", path)
    assert code == 2 and str(path) in err and expected in err, err


def test_bad_input_exits_2_without_traceback_from_the_command_line(tmp_path):
    path = edited_report(tmp_path, lambda r: set_cell(r, 5, "spend", "abc"))
    done = subprocess.run([sys.executable, "scripts/recommend.py", "--policy", "playbook",
                           "--history", str(path)], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 2
    assert "row 5, column 'spend'" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize("args, expected", [
    (["--policy", "no_such_rule"], "is not a policy file or a known policy"),
    (["--policy", "oracle"], "needs the simulator's hidden state"),
    (["--policy", "playbook", "--promo-dates", "11/11"], "--promo-dates"),
    (["--policy", "playbook", "--breakeven-roi", "-1"], "--breakeven-roi must be > 0"),
    (["--policy", "missing/policy.onnx"], "no such policy file"),
])
def test_bad_options_exit_2(capsys, args, expected):
    code, _, err = cli(capsys, *args, "--history", EN)
    assert code == 2 and expected in err, err


@pytest.mark.slow
@pytest.mark.parametrize("field, value, expected", [
    ("onnx_sha256", "0" * 64, "onnx_sha256"),
    ("feature_names", ["roi_d1"], "feature_names"),
    ("env_version", 999, "env_version"),
    ("history_days_required", 7, "history_days_required"),
    ("format", "something else", "not a policy manifest"),
    ("action_space", {"shape": [2]}, "action space has 2 components"),
])
def test_manifest_that_does_not_match_the_model_exits_2(tmp_path, capsys, exported, field,
                                                        value, expected):
    copy = tmp_path / "export"
    shutil.copytree(exported, copy)
    manifest = json.loads((copy / "policy.json").read_text())
    manifest[field] = value
    (copy / "policy.json").write_text(json.dumps(manifest))
    code, _, err = cli(capsys, "--policy", copy / "policy.onnx", "--history", EN)
    assert code == 2 and expected in err and "policy.json" in err, err


@pytest.mark.slow
def test_changed_model_bytes_or_missing_manifest_exit_2(tmp_path, capsys, exported):
    copy = tmp_path / "export"
    shutil.copytree(exported, copy)
    (copy / "policy.onnx").write_bytes((copy / "policy.onnx").read_bytes() + b"\0")
    code, _, err = cli(capsys, "--policy", copy / "policy.onnx", "--history", EN)
    assert code == 2 and "onnx_sha256" in err
    (copy / "policy.json").unlink()
    code, _, err = cli(capsys, "--policy", copy / "policy.onnx", "--history", EN)
    assert code == 2 and "no manifest" in err


# -------------------------------------------------------------------------------- batch
def example_reports(tmp_path: Path) -> Path:
    """A ``--batch`` folder ``tmp_path/reports`` with both examples: shop_a (EN), shop_b (ZH)."""
    reports = tmp_path / "reports"
    reports.mkdir()
    shutil.copy(EN, reports / "shop_a.csv")
    shutil.copy(ZH, reports / "shop_b.csv")
    return reports


def test_batch_scores_good_accounts_and_reports_the_bad_one(tmp_path, capsys):
    reports = example_reports(tmp_path)
    edited_report(reports, lambda r: set_cell(r, 5, "spend", "abc"), name="shop_c.csv")
    out = tmp_path / "recs.csv"
    code, stdout, err = cli(capsys, "--policy", "playbook", "--batch", reports, "--out", out)
    assert code == 0, err
    assert "2 account(s) scored, 1 skipped" in stdout
    assert "shop_c.csv, row 5, column 'spend'" in err
    with out.open(encoding="utf-8-sig") as f:
        rows = list(csv.DictReader(f))
    assert [r["account"] for r in rows] == ["shop_a", "shop_b"]
    for row in rows:
        assert float(row["recommended_budget_cny"]) >= 300
        assert row["decision_date"] and row["current_target_roi"]
    code, stdout, _ = cli(capsys, "--policy", "playbook", "--batch", reports, "--out", out,
                          "--json")
    data = json.loads(stdout)
    assert len(data["recommendations"]) == 2 and data["skipped"][0]["file"].endswith("shop_c.csv")


def test_batch_of_only_bad_reports_exits_2(tmp_path, capsys):
    edited_report(tmp_path, lambda r: set_cell(r, 5, "spend", "abc"))
    code, _, err = cli(capsys, "--policy", "playbook", "--batch", tmp_path, "--out",
                       tmp_path / "out.csv")
    assert code == 2 and "every report was bad" in err
    assert not (tmp_path / "out.csv").exists()


def test_promotion_dates_reach_the_features(tmp_path):
    report = read_report(EN)
    day = report.decision_date
    defaults = AccountDefaults(3.0, (0.4, 0.0, 0.6))
    for spec, expected in ((None, (30.0, 0.0, 30.0)),
                           ((day + dt.timedelta(days=5)).isoformat(), (5.0, 0.0, 30.0)),
                           (f"{day - dt.timedelta(days=1)}..{day + dt.timedelta(days=1)}",
                            (0.0, 1.0, 30.0)),
                           ((day - dt.timedelta(days=4)).isoformat(), (30.0, 0.0, 2.0))):
        _, ctx, _ = history_inputs(report, defaults, parse_promotions(spec, 3))
        got = (ctx.days_to_promo[0], ctx.in_promo[0], ctx.days_after_promo[0])
        assert got == expected, spec
    with pytest.raises(ServingError, match="--promo-dates"):
        parse_promotions("2025-13-01", 3)


def test_playbook_on_a_report_acts_as_on_the_env_observation(tmp_path):
    playbook = make_policy("playbook", load_scenario("3c"))
    account = simulate_account(playbook.config, seed=10003, days=20, policy=playbook)
    path = write_report(tmp_path / "shop.csv", account.dates, account.columns())
    options = RecommendOptions(promo_dates=account.promo_dates, compare=None)
    rec = recommend_files(playbook, [path], options)[0][0]
    expected = playbook.predict(account.observation[None])[0][0]
    np.testing.assert_allclose(rec.policy["action"], expected, atol=1e-6)


def test_a_tuned_rule_on_a_scenario_without_its_baseline_is_a_clear_error(capsys, tmp_path):
    """`--policy static` needs the scenario's tuned settings; a custom preset has none:
    exit 2 naming what is missing, no traceback."""
    preset = tmp_path / "my_shop.yaml"
    preset.write_text("base: 3c\npool_mean_roi: 2.3\n")
    code, _, err = cli(capsys, "--policy", "static", "--scenario", preset, "--history", EN)
    assert code == 2
    assert "no tuned baseline" in err and "Traceback" not in err
