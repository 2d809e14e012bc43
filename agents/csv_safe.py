"""Every CSV the project writes, with text cells a spreadsheet would run made inert.

A spreadsheet (Excel, LibreOffice, WPS) runs a cell that starts with ``=``, ``+``, ``-`` or
``@`` as a formula, and a leading tab or carriage return can hide one: a report named
``=cmd|' -C calc'!A0.csv`` becomes an ``account`` cell that starts a program. The usual
defence (OWASP, "CSV injection") is applied to every cell: such a text is written with a
leading apostrophe, which the spreadsheet shows as text and does not keep. A number stays a
number: ``-3.5``, ``+0.12`` and ``1e-05`` are written as they are.

Standard library only, so serving (:mod:`agents.serving.output`) and the evaluation reports
(:mod:`agents.evaluation.report`) share it without heavy imports. Every CSV writer of the
project goes through :func:`csv_text` (tests/test_csv_safe.py checks that none writes CSV
another way).
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
ESCAPE = "'"  # shown as text by the spreadsheet, not part of the value it displays
_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")


def is_number_text(text: str) -> bool:
    """``text`` is a plain decimal number (``-3.5``, ``+0.12``, ``1e-05``): not a formula."""
    return _NUMBER.fullmatch(text) is not None


def safe_cell(value: Any) -> Any:
    """The cell to write for ``value``: a text that a spreadsheet would read as a formula
    gets :data:`ESCAPE` in front; numbers, number texts and other texts are unchanged."""
    if not isinstance(value, str) or not value.startswith(FORMULA_STARTS):
        return value
    return value if is_number_text(value) else ESCAPE + value


def csv_text(header: Sequence[str], rows: Iterable[Mapping[str, Any] | Sequence[Any]],
             restval: Any = "", lineterminator: str = "\n") -> str:
    """A CSV table as text: ``header``, then one line per row, every cell (header included)
    through :func:`safe_cell`.

    :param rows: mappings (column -> value; a missing column is ``restval``, an unknown one
        a ``ValueError``) or sequences in the header's order.
    """
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator=lineterminator)
    writer.writerow([safe_cell(name) for name in header])
    columns = list(header)
    for row in rows:
        if isinstance(row, Mapping):
            unknown = [key for key in row if key not in columns]
            if unknown:
                raise ValueError(f"row has columns not in the header: {unknown}")
            cells = [row.get(name, restval) for name in columns]
        else:
            cells = list(row)
        writer.writerow([safe_cell(cell) for cell in cells])
    return buffer.getvalue()
