"""A recommendation's output formats: the text table, the batch CSV and JSON.

Each reads :class:`agents.serving.recommend.Recommendation` (its plain form, ``to_dict``'s
parts) and writes; nothing here scores.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agents.csv_safe import csv_text
from agents.serving.errors import ServingError
from agents.serving.guards import GuardNote
from envs.actions import PLANS

if TYPE_CHECKING:
    from agents.serving.recommend import Recommendation


def _money(x: float) -> str:
    return f"{x:,.2f}"


def _change(key: str, new: float, old: float, fmt) -> str:
    """``+0.12 (+4.0%)`` for target and budget; percentage points for plan shares."""
    diff = new - old
    if key.startswith("share_"):
        return f"{diff * 100:+.1f} pp"
    pct = f" ({diff / old:+.1%})" if old else ""
    return f"{'+' if diff >= 0 else '-'}{fmt(abs(diff))}{pct}"


def format_table(rec: Recommendation) -> str:
    """The human-readable answer for one account."""
    r, cur, pol, pb = rec.report, rec.current, rec.policy, rec.playbook
    lines = [
        f"Recommendation for {r.decision_date} ({r.decision_date:%a}), account {r.account}",
        f"  policy : {pol['name']}",
    ]
    if pol.get("anchored"):
        lines.append(f"  anchor : {describe_anchor(pol['anchor'])}")
    lines += [
        f"  report : {r.path} ({r.encoding}, {len(r.dates)} days {r.dates[0]}..{r.dates[-1]})",
        f"  columns: {r.describe_mapping()}",
    ]
    lines += [f"  read   : {note}" for note in r.notes]
    lines += [f"  assumed: {note}" for note in rec.notes]
    if cur["learning"] or cur["learn_failed"]:
        lines.append(f"  status : {'learning' if cur['learning'] else 'learning failed'}")
    header = ["setting", "current", "policy raw", "recommended", "change"]
    if pb is not None:
        header.append(pb["name"])
    rows = [header]
    fields = [("payment-ROI target", "target_roi", lambda x: f"{x:.2f}", lambda x: f"{x:.4f}"),
              ("daily budget (CNY)", "budget_cny", _money, _money)]
    if "share_volume" in pol["recommended"] or (pb and "share_volume" in pb["recommended"]):
        fields += [(f"share {p}", f"share_{p}", lambda x: f"{x:.0%}", lambda x: f"{x:.1%}")
                   for p in PLANS if f"share_{p}" in cur]
    for label, key, fmt, raw_fmt in fields:
        rec_value = pol["recommended"].get(key)
        row = [label, fmt(cur[key]),
               raw_fmt(pol["raw"][key]) if rec_value is not None else "-",
               fmt(rec_value) if rec_value is not None else "-",
               _change(key, rec_value, cur[key], fmt) if rec_value is not None else ""]
        if pb is not None:
            value = pb["recommended"].get(key)
            row.append(fmt(value) if value is not None else "-")
        rows.append(row)
    if "creative_refresh" in pol["recommended"] or (pb and "creative_refresh" in
                                                     pb["recommended"]):
        yes = {True: "yes", False: "no", None: "-"}
        row = ["refresh creatives", "", yes[pol["raw"].get("creative_refresh")],
               yes[pol["recommended"].get("creative_refresh")], ""]
        if pb is not None:
            row.append(yes[pb["recommended"].get("creative_refresh")])
        rows.append(row)
    widths = [max(len(row[k]) for row in rows) for k in range(len(header))]
    lines.append("")
    for row in rows:
        lines.append("  " + row[0].ljust(widths[0]) + "".join(
            "  " + cell.rjust(w) for cell, w in zip(row[1:], widths[1:], strict=True)))
    for who, ans in (("policy", pol), (pb["name"] if pb else "", pb)):
        if ans is None:
            continue
        lines.append("")
        lines.append(f"  guards on the {who}'s answer:" + ("" if ans["guards"] else " none"))
        for g in ans["guards"]:
            lines.append(f"    {GuardNote(**g).describe()}")
    return "\n".join(lines)


def describe_anchor(anchor: dict[str, Any]) -> str:
    """An anchored answer's anchor in one line (the table's ``anchor :`` line)."""
    a = anchor["settings"]
    return (f"anchored on {anchor['kind']}'s settings for {anchor['scenario']}: target "
            f"{a['target_over_breakeven']:.4g} x break-even, budget "
            f"{a['budget_over_launch']:.4g} x the launch budget "
            f"{_money(anchor['launch_budget_cny'])} ({anchor['launch_budget_source']})")


CSV_COLUMNS = ("account", "file", "decision_date", "policy", "current_target_roi",
               "recommended_target_roi", "target_change", "current_budget_cny",
               "recommended_budget_cny", "budget_change_cny", "share_payment_roi",
               "share_settlement_roi", "share_volume", "creative_refresh", "learning",
               "guards", "playbook_target_roi", "playbook_budget_cny", "playbook_guards",
               "notes")


def batch_rows(recs: Sequence[Recommendation]) -> list[dict[str, Any]]:
    """One flat row per account for the batch CSV."""
    rows = []
    for rec in recs:
        pol, pb, cur = rec.policy, rec.playbook, rec.current
        final = pol["recommended"]
        rows.append({
            "account": rec.report.account, "file": str(rec.report.path),
            "decision_date": rec.report.decision_date.isoformat(), "policy": pol["name"],
            **({"anchor": f"{pol['anchor']['kind']}:{pol['anchor']['scenario']}",
                "launch_budget_cny": f"{pol['anchor']['launch_budget_cny']:.2f}"}
               if pol.get("anchored") else {}),
            "current_target_roi": f"{cur['target_roi']:.2f}",
            "recommended_target_roi": f"{final['target_roi']:.2f}",
            "target_change": f"{pol['change']['target_roi']:+.2f}",
            "current_budget_cny": f"{cur['budget_cny']:.2f}",
            "recommended_budget_cny": f"{final['budget_cny']:.2f}",
            "budget_change_cny": f"{pol['change']['budget_cny']:+.2f}",
            **{f"share_{p}": (f"{final[f'share_{p}']:.4f}" if f"share_{p}" in final else "")
               for p in PLANS if p != "whole_site" or f"share_{p}" in final},
            "creative_refresh": final.get("creative_refresh", ""),
            "learning": int(cur["learning"]),
            "guards": "; ".join(GuardNote(**g).describe() for g in pol["guards"]),
            "playbook_target_roi": f"{pb['recommended']['target_roi']:.2f}" if pb else "",
            "playbook_budget_cny": f"{pb['recommended']['budget_cny']:.2f}" if pb else "",
            "playbook_guards": ("; ".join(GuardNote(**g).describe() for g in pb["guards"])
                                if pb else ""),
            "notes": "; ".join(rec.report.notes + rec.notes),
        })
    return rows


def check_out_path(path: str | Path) -> Path:
    """``--out``: a file in an existing folder (checked before any report is scored).

    :raises ServingError: the path is a folder, or its folder does not exist.
    """
    path = Path(path)
    if path.is_dir():
        raise ServingError("--out is a directory; give the CSV file to write, e.g. "
                           f"{path / 'recommendations.csv'}", path)
    if not path.parent.is_dir():
        raise ServingError("--out: the folder to write into does not exist", path.parent)
    return path


def plain_batch_columns(rows: Sequence[dict]) -> list[str]:
    """The batch CSV's columns for these rows: :data:`CSV_COLUMNS`, with the whole-site
    plan's share where a scenario has it, and an anchored policy's anchor and launch
    budget where a row has them."""
    columns = list(CSV_COLUMNS)
    if any("share_whole_site" in row for row in rows):
        columns.insert(columns.index("share_volume") + 1, "share_whole_site")
    if any("anchor" in row for row in rows):
        at = columns.index("policy") + 1
        columns[at:at] = ["anchor", "launch_budget_cny"]
    return columns


def write_csv(path: str | Path, columns: Sequence[str], rows: Sequence[dict]) -> Path:
    """Write ``rows`` under ``columns`` as one CSV (UTF-8 with BOM: opens in Excel),
    atomically: through a temporary file beside it, removed if anything fails. Text cells a
    spreadsheet would run as formulas are escaped (:mod:`agents.csv_safe`).

    :raises ServingError: ``path`` is not writable (:func:`check_out_path`, or the OS's
        reason in words).
    """
    path = check_out_path(path)
    data = csv_text(list(columns), rows).encode("utf-8-sig")
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except OSError as exc:
        raise ServingError(f"--out: cannot write the CSV ({(exc.strerror or str(exc)).lower()})",
                           path) from None
    finally:
        tmp.unlink(missing_ok=True)
    return path


def write_batch_csv(recs: Sequence[Recommendation], path: str | Path) -> Path:
    """Write the batch's recommendations as one CSV (:func:`write_csv`).

    :raises ServingError: ``path`` is not writable.
    """
    path = check_out_path(path)
    rows = batch_rows(recs)
    return write_csv(path, plain_batch_columns(rows), rows)


def to_json(recs: Sequence[Recommendation], skipped: Sequence[dict[str, str]] | None = None,
            batch: bool = False) -> str:
    """``--json`` output: one object for one account, else recommendations and skipped."""
    if not batch and len(recs) == 1:
        return json.dumps(recs[0].to_dict(), ensure_ascii=False, indent=2)
    return json.dumps({"recommendations": [r.to_dict() for r in recs],
                       "skipped": list(skipped or [])}, ensure_ascii=False, indent=2)
