"""The one error type of the serving path: what is wrong, and where (file, row, column)."""

from __future__ import annotations

from pathlib import Path


class ServingError(Exception):
    """Bad input to ``recommend`` or a policy that does not match its manifest.

    :param message: what is wrong, in words a report's owner can act on.
    :param file: the file at fault.
    :param row: 1-based line of the file (the header is line 1 of a CSV).
    :param column: the column's header as written in the file.
    """

    def __init__(self, message: str, file: str | Path | None = None, row: int | None = None,
                 column: str | None = None):
        self.message = message
        self.file = None if file is None else str(file)
        self.row = row
        self.column = column
        super().__init__(str(self))

    def __str__(self) -> str:
        where = [part for part in (
            self.file,
            None if self.row is None else f"row {self.row}",
            None if self.column is None else f"column {self.column!r}",
        ) if part]
        return f"{', '.join(where)}: {self.message}" if where else self.message
