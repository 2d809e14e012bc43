"""Read an account's daily report as Qianchuan exports it (or as a person types it).

One row per day. Required columns: ``date, spend, gmv, orders, target_roi, budget``;
optional: ``refunds, settled_gmv, balance, learning, learn_failed, interrupted,
plan_launch_date, creative_date, breakeven_roi`` and the plan shares ``share_payment_roi,
share_settlement_roi, share_volume`` (and ``share_whole_site``, 0 when absent). Headers may
be written in Chinese (日期, 消耗, 支付GMV, 成交订单数, 支付ROI目标, 日预算, ...; see
:data:`ALIASES`), with units in brackets
(``消耗(元)``). Files: ``.csv`` (UTF-8, UTF-8 with BOM or GBK; comma, tab or semicolon) or
``.xlsx`` (first sheet). Numbers such as ``1,234.5``, ``¥1,234`` or ``12%`` are accepted.
Every problem is a :class:`ServingError` naming the file, row and column.

Plausibility (assumptions, stated here once): one account's daily figures stay far below
:data:`MAX_DAILY_CNY` (spend, GMV, refunds, settled GMV, budget, balance; a billion CNY a
day is beyond any single shop's biggest promotion day) and :data:`MAX_DAILY_ORDERS`; ROI
targets and break-even ROIs below :data:`MAX_ROI` (the platform accepts targets up to 100);
plan shares are fractions (at most 1, or a percentage such as ``40%``); a report holds at
most :data:`MAX_REPORT_DAYS` days (ten years; the policy reads the last
``HISTORY_DAYS_REQUIRED``). A value beyond them is a unit or typing error, and a row with
more filled cells than the header has columns is misaligned (often an unquoted ``1,234``):
both are refused, naming the row, rather than scored.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from agents.csv_safe import csv_text
from agents.serving.errors import ServingError
from envs.history import HISTORY_DAYS_REQUIRED

REQUIRED = ("date", "spend", "gmv", "orders", "target_roi", "budget")
NUMERIC = ("spend", "gmv", "orders", "target_roi", "budget", "refunds", "settled_gmv",
           "balance", "breakeven_roi", "share_payment_roi", "share_settlement_roi",
           "share_volume", "share_whole_site")
FLAGS = ("learning", "learn_failed", "interrupted")
DATES = ("date", "plan_launch_date", "creative_date")

# Accepted headers per column, best first (compared after :func:`normalise_header`). When a
# file has several headers of one column, the first in this order wins and the others are
# reported as ignored.
ALIASES: dict[str, tuple[str, ...]] = {
    "date": ("date", "day", "日期", "统计日期", "数据日期", "时间"),
    "spend": ("spend", "spendcny", "cost", "adspend", "消耗", "总消耗", "消耗金额", "广告消耗",
              "花费"),
    "gmv": ("gmv", "paymentgmv", "paygmv", "支付gmv", "成交金额", "支付金额", "支付成交金额",
            "直接成交金额", "整体成交金额", "总成交金额"),
    "orders": ("orders", "ordercount", "订单数", "成交订单数", "支付订单数", "直接成交订单数",
               "整体成交订单数"),
    "target_roi": ("targetroi", "paymentroitarget", "roitarget", "支付roi目标", "roi目标",
                   "目标roi", "支付roi出价", "出价roi"),
    "budget": ("budget", "dailybudget", "budgetcny", "日预算", "每日预算", "预算"),
    "refunds": ("refunds", "refund", "refundamount", "退款金额", "退款", "退款gmv"),
    "settled_gmv": ("settledgmv", "settlementgmv", "结算gmv", "结算成交金额", "结算金额"),
    "balance": ("balance", "accountbalance", "账户余额", "余额"),
    "learning": ("learning", "learningstatus", "学习期", "学习状态", "是否学习期", "学习期状态"),
    "learn_failed": ("learnfailed", "learningfailed", "学习失败"),
    "interrupted": ("interrupted", "投放中断", "余额不足中断", "中断"),
    "plan_launch_date": ("planlaunchdate", "launchdate", "计划创建日期", "计划创建时间",
                         "计划上线日期", "开始投放日期"),
    "creative_date": ("creativedate", "creativerefreshdate", "素材更新日期", "素材上新日期"),
    "breakeven_roi": ("breakevenroi", "保本roi"),
    "share_payment_roi": ("sharepaymentroi", "支付roi预算占比"),
    "share_settlement_roi": ("sharesettlementroi", "结算roi预算占比"),
    "share_volume": ("sharevolume", "放量预算占比"),
    "share_whole_site": ("sharewholesite", "全域推广预算占比"),
}
_TRUE = {"1", "true", "yes", "y", "是", "学习中", "学习期", "中断", "已中断", "失败", "学习失败"}
_FALSE = {"0", "false", "no", "n", "否", "", "-", "--", "已通过", "通过", "学习完成", "学习成功",
          "已完成", "正常"}
_MISSING = {"", "-", "--", "—", "n/a", "na", "nan", "null", "none"}
_TOTAL_ROWS = {"合计", "总计", "汇总", "total", "sum"}
_DATE_FORMATS = ("%Y-%m-%d", "%Y/%m/%d", "%Y%m%d", "%Y.%m.%d", "%Y年%m月%d日")
_HEADER_SCAN_ROWS = 10  # a header may follow a few title lines
MAX_DAILY_CNY = 1e9  # CNY: a day's spend/GMV/refunds/settled GMV/budget, or a balance
MAX_DAILY_ORDERS = 1e7  # orders a day
MAX_ROI = 1000.0  # GMV/spend: target_roi, breakeven_roi (the platform's targets: 0.01-100)
MAX_SHARE = 1.0  # a plan's budget share
MAX_REPORT_DAYS = 3660  # rows of days: ten years
_CNY_COLUMNS = ("spend", "gmv", "refunds", "settled_gmv", "budget", "balance")


def normalise_header(header: Any) -> str:
    """Lower case, bracketed units and spaces/underscores/dashes removed: ``消耗(元)`` ->
    ``消耗``, ``Target ROI`` -> ``targetroi``."""
    text = str(header if header is not None else "").replace("\ufeff", "").strip().lower()
    text = re.sub(r"[(\uff08\[【].*?[)\uff09\]】]", "", text)
    return re.sub(r"[\s_\-/·:：]+", "", text)


_ALIAS_INDEX = {alias: (name, rank) for name, aliases in ALIASES.items()
                for rank, alias in enumerate(aliases)}


@dataclass
class AccountReport:
    """One account's report, parsed and checked.

    :param values: numeric columns present in the file, float64 arrays over days (money in
        CNY, ROI in GMV/spend, flags 0/1, shares 0-1); blank ``settled_gmv`` cells are NaN.
    :param mapping: column -> header as written in the file.
    """

    path: Path
    dates: list[dt.date]
    values: dict[str, np.ndarray]
    mapping: dict[str, str]
    encoding: str
    plan_launch_date: dt.date | None = None
    creative_date: dt.date | None = None
    ignored: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    # each row's date columns as written (None where blank or absent): calibration reads the
    # creative refresh of every day; recommend needs only the latest (above)
    row_dates: dict[str, list[dt.date | None]] = field(default_factory=dict)

    @property
    def account(self) -> str:
        """The account's name: the file name without its suffix."""
        return self.path.stem

    @property
    def decision_date(self) -> dt.date:
        """The day being decided: the day after the report's last row."""
        return self.dates[-1] + dt.timedelta(days=1)

    def describe_mapping(self) -> str:
        """``header→column`` pairs as one line (what the reader understood)."""
        pairs = ", ".join(f"{header}→{name}" for name, header in self.mapping.items())
        ignored = f"; ignored: {', '.join(self.ignored)}" if self.ignored else ""
        return f"{pairs}{ignored}"


# ---------------------------------------------------------------------------- raw tables
def _decode(raw: bytes, path: Path) -> tuple[str, str]:
    if b"\x00" in raw[:4096]:
        raise ServingError("not a text table (binary content); expected a .csv or .xlsx "
                           "daily report", path)
    try:
        return raw.decode("utf-8-sig"), ("utf-8-sig" if raw.startswith(b"\xef\xbb\xbf")
                                         else "utf-8")
    except UnicodeDecodeError:
        pass
    try:
        return raw.decode("gb18030"), "gbk"
    except UnicodeDecodeError:
        raise ServingError("cannot decode the file as UTF-8 or GBK text", path) from None


def _read_csv(path: Path) -> tuple[list[tuple[int, list[Any]]], str]:
    text, encoding = _decode(path.read_bytes(), path)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=_delimiter(text))
    rows = []
    try:
        for cells in reader:
            rows.append((reader.line_num, cells))
    except csv.Error as exc:
        raise ServingError(f"not a readable CSV table ({exc})", path, reader.line_num) from None
    return rows, encoding


def _delimiter(text: str) -> str:
    """The delimiter (comma, tab or semicolon) under which the header row holds the most
    recognised columns; a comma when no header is found."""
    head = text.splitlines()[:_HEADER_SCAN_ROWS]
    best, found = ",", 0
    for delimiter in (",", "\t", ";"):
        for cells in csv.reader(head, delimiter=delimiter):
            columns = _map_header(cells)[0]
            if _is_header(columns):
                if len(columns) > found:
                    best, found = delimiter, len(columns)
                break
    return best


def _read_xlsx(path: Path) -> tuple[list[tuple[int, list[Any]]], str]:
    try:
        import openpyxl  # lazily: only .xlsx reports need it
        book = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises many types for a broken file
        raise ServingError(f"not a readable .xlsx workbook ({type(exc).__name__}: {exc})",
                           path) from None
    try:
        sheet = book.worksheets[0]
        rows = [(i, list(cells)) for i, cells in enumerate(sheet.iter_rows(values_only=True),
                                                           start=1)]
    finally:
        book.close()
    return rows, "xlsx"


def read_rows(path: Path) -> tuple[list[tuple[int, list[Any]]], str]:
    """The file's rows as ``(line number, cells)`` and the encoding used."""
    if not path.is_file():
        raise ServingError("no such file", path)
    if path.suffix.lower() in (".xlsx", ".xlsm"):
        return _read_xlsx(path)
    return _read_csv(path)


# --------------------------------------------------------------------------- cell values
def _cell_text(value: Any) -> str:
    return "" if value is None else str(value).strip()


def parse_number(value: Any, path: Path, row: int, header: str) -> float | None:
    """A non-negative number from a cell; None for a blank cell.

    Accepts thousands separators (``1,234.5``), currency marks (``¥``) and percentages
    (``12%`` -> 0.12).
    """
    if isinstance(value, bool):
        raise ServingError(f"expected a number, got {value!r}", path, row, header)
    if isinstance(value, (int, float)):
        number = float(value)
    else:
        text = _cell_text(value)
        try:
            number = float(text)  # the common case: a plain number
        except ValueError:
            number = _parse_formatted(text, value, path, row, header)
        if number is None or math.isnan(number):  # "nan" is how some tools write a blank
            return None
    if not math.isfinite(number):
        raise ServingError(f"expected a finite number, got {_cell_text(value)!r}", path, row,
                           header)
    if number < 0:
        raise ServingError(f"negative value {_cell_text(value)!r} (must be >= 0)", path, row,
                           header)
    return number


def _parse_formatted(text: str, value: Any, path: Path, row: int, header: str) -> float | None:
    """``1,234.5``, ``¥1,234``, ``12%``; None for a blank or dash."""
    if text.lower() in _MISSING:
        return None
    scale = 1.0
    if text.endswith(("%", "％")):
        text, scale = text[:-1], 0.01
    text = re.sub(r"[,，\s¥￥]|元$|CNY$", "", text)
    try:
        return float(text) * scale
    except ValueError:
        raise ServingError(f"expected a number, got {_cell_text(value)!r}", path, row,
                           header) from None


def plausible_maximum(name: str) -> tuple[float, str] | None:
    """The largest plausible value of a numeric column and its unit (None: no bound)."""
    if name in _CNY_COLUMNS:
        return MAX_DAILY_CNY, "CNY"
    if name == "orders":
        return MAX_DAILY_ORDERS, "orders a day"
    if name in ("target_roi", "breakeven_roi"):
        return MAX_ROI, "GMV/spend"
    if name.startswith("share_"):
        return MAX_SHARE, "of the budget (a fraction, or a percentage such as 40%)"
    return None


def check_plausible(name: str, number: float, path: Path, row: int, header: str) -> None:
    """Refuse a value beyond :func:`plausible_maximum`: a unit or typing error, not a day of
    one account (see the module's docstring for the bounds)."""
    bound = plausible_maximum(name)
    if bound is not None and number > bound[0]:
        raise ServingError(f"{number:g} is beyond the plausible maximum {bound[0]:g} "
                           f"{bound[1]} for {name} (a unit or typing error?)", path, row, header)


def parse_date(value: Any, path: Path, row: int, header: str) -> dt.date | None:
    """A calendar date from a cell (``2024-06-01``, ``2024/6/1``, ``20240601``,
    ``2024年6月1日``, an Excel date); None for a blank cell."""
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    text = _cell_text(value)
    if text.lower() in _MISSING:
        return None
    text = text.split()[0].split("T")[0]
    try:
        return dt.date.fromisoformat(text)  # the common case, fast
    except ValueError:
        pass
    for fmt in _DATE_FORMATS:
        try:
            return dt.datetime.strptime(text, fmt).date()
        except ValueError:
            continue
    raise ServingError(f"expected a date such as 2024-06-01, got {_cell_text(value)!r}", path,
                       row, header)


def parse_flag(value: Any, path: Path, row: int, header: str) -> float:
    """A 0/1 status from ``1``/``0``, ``true``/``false``, ``是``/``否``, ``学习中``/``已通过``."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if value not in (0, 1):
            raise ServingError(f"expected 0 or 1, got {value!r}", path, row, header)
        return float(value)
    text = _cell_text(value).lower()
    if text in _TRUE:
        return 1.0
    if text in _FALSE:
        return 0.0
    raise ServingError(f"expected a yes/no status (1/0, 是/否), got {_cell_text(value)!r}",
                       path, row, header)


# ------------------------------------------------------------------------------ the table
def _map_header(cells: Sequence[Any]) -> tuple[dict[str, int], list[str]]:
    """Column -> index for the recognised headers, and the headers left unused."""
    best: dict[str, tuple[int, int]] = {}
    for index, cell in enumerate(cells):
        hit = _ALIAS_INDEX.get(normalise_header(cell))
        if hit is not None:
            name, rank = hit
            if name not in best or rank < best[name][0]:
                best[name] = (rank, index)
    used = {index for _, index in best.values()}
    ignored = [_cell_text(c) for i, c in enumerate(cells) if i not in used and _cell_text(c)]
    return {name: index for name, (_, index) in best.items()}, ignored


def _is_header(columns: dict[str, int]) -> bool:
    """A header row names the date and at least two other required columns."""
    return "date" in columns and len(set(columns) & set(REQUIRED)) >= 3


def _find_header(rows: list[tuple[int, list[Any]]], path: Path) -> int:
    for pos, (_, cells) in enumerate(rows[:_HEADER_SCAN_ROWS]):
        if _is_header(_map_header(cells)[0]):
            return pos
    wanted = ", ".join(f"{name} ({ALIASES[name][-1] if name != 'date' else '日期'})"
                       for name in REQUIRED)
    raise ServingError(f"no header row with the report's columns ({wanted}) in the first "
                       f"{_HEADER_SCAN_ROWS} rows: not a daily report table", path)


def read_report(path: str | Path) -> AccountReport:
    """Read and check one account's daily report.

    :param path: a ``.csv`` or ``.xlsx`` file, one row per day, oldest first.
    :raises ServingError: naming the file, row and column of the first problem.
    """
    path = Path(path)
    rows, encoding = read_rows(path)
    head = _find_header(rows, path)
    header_line, header_cells = rows[head]
    index, ignored = _map_header(header_cells)
    headers = {name: _cell_text(header_cells[i]) for name, i in index.items()}
    missing = [n for n in REQUIRED if n not in index]
    if missing:
        names = "; ".join(f"{n} (e.g. {', '.join(ALIASES[n][:1] + ALIASES[n][-3:])})"
                          for n in missing)
        raise ServingError(f"missing column(s): {names}", path, header_line)

    def cell(cells: list[Any], name: str) -> Any:
        i = index[name]
        return cells[i] if i < len(cells) else None

    dates: list[dt.date] = []
    lines: list[int] = []
    columns: dict[str, list[float]] = {n: [] for n in index if n in NUMERIC or n in FLAGS}
    constants: dict[str, dt.date] = {}
    row_dates: dict[str, list[dt.date | None]] = {
        name: [] for name in ("plan_launch_date", "creative_date") if name in index}
    notes: list[str] = []
    for line, cells in rows[head + 1:]:
        if all(_cell_text(c) == "" for c in cells):
            continue
        extra = [c for c in cells[len(header_cells):] if _cell_text(c) != ""]
        if extra:
            raise ServingError(f"{len(extra)} filled cell(s) beyond the header's "
                               f"{len(header_cells)} columns (first: {_cell_text(extra[0])!r}):"
                               " the row is misaligned (an unquoted 1,234?)", path, line)
        first = _cell_text(cell(cells, "date")).lower()
        if first in _TOTAL_ROWS:
            notes.append(f"row {line}: summary row {first!r} skipped")
            continue
        day = parse_date(cell(cells, "date"), path, line, headers["date"])
        if day is None:
            raise ServingError("missing date", path, line, headers["date"])
        if len(dates) >= MAX_REPORT_DAYS:
            raise ServingError(f"more than {MAX_REPORT_DAYS} days of history (ten years); "
                               "keep the recent days (the policy reads the last "
                               f"{HISTORY_DAYS_REQUIRED})", path, line, headers["date"])
        dates.append(day)
        lines.append(line)
        for name in columns:
            raw = cell(cells, name)
            if name in FLAGS:
                columns[name].append(parse_flag(raw, path, line, headers[name]))
                continue
            number = parse_number(raw, path, line, headers[name])
            if number is None:
                if name != "settled_gmv":  # settlement is blank until a day is 7 days old
                    raise ServingError("missing value", path, line, headers[name])
                number = math.nan
            else:
                check_plausible(name, number, path, line, headers[name])
            columns[name].append(number)
        for name in ("plan_launch_date", "creative_date"):
            if name in index:
                value = parse_date(cell(cells, name), path, line, headers[name])
                row_dates[name].append(value)
                if value is not None:
                    constants[name] = value  # the latest row's value holds
    _check_days(path, dates, lines, headers["date"])
    values = {name: np.asarray(col, dtype=np.float64) for name, col in columns.items()}
    for name in ("target_roi", "budget"):
        zero = np.flatnonzero(values[name] <= 0)
        if zero.size:
            raise ServingError(f"{name} must be > 0", path, lines[zero[0]], headers[name])
    return AccountReport(path=path, dates=dates, values=values, mapping=headers,
                         encoding=encoding, plan_launch_date=constants.get("plan_launch_date"),
                         creative_date=constants.get("creative_date"), ignored=ignored,
                         notes=notes, row_dates=row_dates)


def _check_days(path: Path, dates: list[dt.date], lines: list[int], header: str) -> None:
    """At least :data:`HISTORY_DAYS_REQUIRED` consecutive days, oldest first."""
    for i in range(1, len(dates)):  # order first: a swapped pair is not a missing day
        if dates[i] == dates[i - 1]:
            raise ServingError(f"duplicated date {dates[i]} (also on row {lines[i - 1]})",
                               path, lines[i], header)
        if dates[i] < dates[i - 1]:
            raise ServingError(f"dates are not sorted: {dates[i]} after {dates[i - 1]} "
                               "(oldest first, one row per day)", path, lines[i], header)
    for i in range(1, len(dates)):
        if (dates[i] - dates[i - 1]).days > 1:
            raise ServingError(f"missing day(s) between {dates[i - 1]} and {dates[i]}: one row "
                               "per consecutive day", path, lines[i], header)
    if len(dates) < HISTORY_DAYS_REQUIRED:
        raise ServingError(f"{len(dates)} day(s) of history; at least "
                           f"{HISTORY_DAYS_REQUIRED} consecutive days are needed", path)


# ------------------------------------------------------------------------------- writing
def write_report(path: str | Path, dates: Sequence[dt.date | str],
                 columns: dict[str, Sequence[Any]], headers: dict[str, str] | None = None,
                 encoding: str = "utf-8") -> Path:
    """Write a daily report CSV atomically (what the example files and tests use).

    :param columns: column -> values over days (NaN written as a blank cell).
    :param headers: column -> header to write (default: the column's name).
    :param encoding: e.g. ``utf-8``, ``utf-8-sig`` or ``gbk``.
    """
    path = Path(path)
    headers = headers or {}
    names = list(columns)
    text = csv_text([headers.get("date", "date"), *(headers.get(n, n) for n in names)], (
        [_format_cell(day), *(_format_cell(columns[n][i]) for n in names)]
        for i, day in enumerate(dates)))
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(text.encode(encoding))
    os.replace(tmp, path)
    return path


def _format_cell(value: Any) -> str:
    if isinstance(value, (dt.date, str)):
        return str(value)
    number = float(value)
    if math.isnan(number):
        return ""
    return repr(number) if number != int(number) else str(int(number))
