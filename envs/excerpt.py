"""A bounded excerpt of a value, for error messages that quote what they were given.

A config value can be huge: a 300-byte YAML file whose aliases nest a list nine deep expands to
millions of items, and ``repr`` of it is megabytes. Every error that quotes a value a user gave
(a config value, an action) quotes it through :func:`excerpt`, so a message stays one short
line whatever the value. Standard library only: light enough for every module.
"""

from __future__ import annotations

import re
import reprlib
from typing import Any

EXCERPT_CHARS = 120  # the longest excerpt, in characters

_LINE_BREAK = re.compile(r"\s*\n\s*")
_REPR = reprlib.Repr()
# few items per level and few levels: the walk visits at most ~8**3 items of any value
_REPR.maxlevel = 3
_REPR.maxlist = _REPR.maxtuple = _REPR.maxset = _REPR.maxfrozenset = _REPR.maxdeque = 8
_REPR.maxarray = _REPR.maxdict = 8
_REPR.maxstring = _REPR.maxother = _REPR.maxlong = EXCERPT_CHARS


def excerpt(value: Any, limit: int = EXCERPT_CHARS) -> str:
    """``repr(value)``, cut to at most ``limit`` characters (containers show their first
    items and ``...``; nesting beyond three levels shows as ``[...]``).

    :param limit: the most characters returned (at least 4).
    """
    text = _LINE_BREAK.sub(" ", _REPR.repr(value))  # one line (NumPy arrays span several)
    return text if len(text) <= limit else text[:max(limit, 4) - 3] + "..."


def key_text(key: Any) -> str:
    """A key as an error shows it: a short string as it is, anything else as an excerpt."""
    return key if isinstance(key, str) and len(key) <= 60 else excerpt(key, 60)
