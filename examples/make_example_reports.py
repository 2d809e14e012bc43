"""Write the example daily reports in ``examples/`` from simulated accounts.

``report_en.csv`` and ``report_zh.csv`` are 3C accounts (the default scenario) run by the
playbook from launch, on report seeds (contracts: reports use seeds from 10000); their last
20 days of dashboard rows are written as a report. ``report_en.csv``: English headers,
UTF-8, every column recommend reads. ``report_zh.csv``: a Qianchuan-style export with
Chinese headers, GBK, formatted numbers (``12,345.67``), a status column in words, a
payment-ROI column recommend ignores, blank settlement cells as ``-`` and a 合计 (total)
row. ``report_90d.csv``: 90 days of a synthetic calibration account (seed 60100, its
economics drawn around 3C), long enough for ``scripts/calibrate.py``.

    .venv/bin/python examples/make_example_reports.py
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np

from agents.calibration.synthetic import synthetic_account
from agents.policies import make_policy
from agents.serving.report import write_report
from agents.serving.simulated import simulate_account
from envs.config import load_scenario
from envs.seeds import REPORT_SEED

HERE = Path(__file__).resolve().parent
REPORT_DAYS = 20
CALIBRATION_EXAMPLE = 100  # synthetic calibration account 60100
CALIBRATION_DAYS = 90


def _money(x: float) -> str:
    return "-" if np.isnan(x) else f"{x:,.2f}"


def main() -> None:
    base = load_scenario("3c")
    playbook = make_policy("playbook", base)
    cfg = playbook.config.replace(history_days=REPORT_DAYS)

    en = simulate_account(cfg, seed=REPORT_SEED, days=30, policy=playbook,
                          around=dt.date(2025, 5, 12))
    write_report(HERE / "report_en.csv", en.dates, en.columns())
    print(f"report_en.csv: decides {en.decision_date}; --promo-dates {en.promo_dates}")

    zh = simulate_account(cfg, seed=10001, days=40, policy=playbook,
                          around=dt.date(2025, 5, 12))
    c = zh.columns()
    spend, gmv = np.asarray(c["spend"]), np.asarray(c["gmv"])
    roi = np.divide(gmv, spend, out=np.zeros_like(gmv), where=spend > 0)
    columns = {
        "消耗(元)": [_money(x) for x in spend],
        "成交金额(元)": [_money(x) for x in gmv],
        "成交订单数": [str(int(x)) for x in c["orders"]],
        "支付ROI": [f"{x:.2f}" for x in roi],
        "支付ROI目标": [f"{x:.2f}" for x in c["target_roi"]],
        "日预算(元)": [_money(x) for x in c["budget"]],
        "退款金额(元)": [_money(x) for x in c["refunds"]],
        "结算GMV(元)": [_money(x) for x in c["settled_gmv"]],
        "账户余额(元)": [_money(x) for x in c["balance"]],
        "学习期状态": ["学习中" if x else "已通过" for x in c["learning"]],
        "计划创建日期": [d.isoformat() for d in c["plan_launch_date"]],
    }
    dates: list = list(zh.dates)
    dates.append("合计")  # Qianchuan exports end with a total row
    columns = {k: [*v, ""] for k, v in columns.items()}
    columns["消耗(元)"][-1] = _money(spend.sum())
    columns["成交金额(元)"][-1] = _money(gmv.sum())
    write_report(HERE / "report_zh.csv", dates, columns, headers={"date": "日期"},
                 encoding="gbk")
    print(f"report_zh.csv: decides {zh.decision_date}; --promo-dates {zh.promo_dates}")

    # A long report for calibrate: a synthetic account (its parameters drawn from the fit's
    # prior around 3c, seed 60000 + CALIBRATION_EXAMPLE) run by the playbook for 90 days.
    long = synthetic_account(base, CALIBRATION_EXAMPLE, CALIBRATION_DAYS)
    long.write(HERE / "report_90d.csv")
    print(f"report_90d.csv: {CALIBRATION_DAYS} days; --promo-dates {long.promo_dates}")


if __name__ == "__main__":
    main()
