"""One NumPy source, two engines: the simulator's hot code run as NumPy or compiled by Numba.

The market's day (:mod:`envs.market`) and the history -> features code (:mod:`envs.history`)
are written once, in the subset of NumPy that Numba compiles: array expressions over the
batch axis, no Python objects but arrays, numbers and named tuples. NumPy runs them as they
are; :func:`compiled` hands the same function to ``numba.njit``.

Why compile: at the tens of accounts PPO trains on, a simulated day is a few hundred NumPy
calls on tiny arrays, and their fixed per-call cost (about 2 µs each) made the environment a
quarter of PPO's wall time. Compiled, a day is one call (see ``docs/training.md``).

Who runs what:

- the simulator (:class:`envs.simulator.Simulator`, so both envs, evaluation and training)
  runs the compiled engine by default;
- ``recommend`` runs :func:`envs.history.build_features` as plain NumPy, so serving imports
  neither Numba nor a compiler;
- ``QIANCHUAN_ENGINE=numpy`` makes the simulator run the plain NumPy engine too (debugging,
  or a platform without Numba); ``tests/test_compiled.py`` checks the engines agree.

Numba is imported on the first call of :func:`compiled`, never at import time. Compiled code
is cached on disk (``~/.cache/qianchuan-rl/numba/<hash>``, or ``$NUMBA_CACHE_DIR``), keyed
by a hash of the ``envs`` sources, so an edit anywhere in ``envs`` recompiles (Numba's own
cache only notices edits to the file of the function it compiles, not to the helpers it calls).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ENGINE_VARIABLE = "QIANCHUAN_ENGINE"
ENGINES = ("numba", "numpy")

_HELPERS: list[Callable] = []  # plain functions that kernels call (compiled inline)
_COMPILED: dict[Callable, Callable] = {}
_installed = False


def engine() -> str:
    """The simulator's engine: ``$QIANCHUAN_ENGINE`` (``numba`` unless set)."""
    name = os.environ.get(ENGINE_VARIABLE, "numba").strip().lower() or "numba"
    if name not in ENGINES:
        raise ValueError(f"{ENGINE_VARIABLE}={name!r}: expected one of {', '.join(ENGINES)}")
    return name


def helper(fn: Callable) -> Callable:
    """Mark ``fn`` as callable from compiled kernels; ``fn`` itself is returned unchanged."""
    _HELPERS.append(fn)
    return fn


def compiled(fn: Callable, engine_name: str | None = None) -> Callable:
    """``fn`` compiled by Numba (once per process, cached on disk), or ``fn`` itself when the
    engine is ``numpy``.

    :param fn: a kernel written in Numba's NumPy subset; the helpers it calls must be marked
        with :func:`helper`.
    :param engine_name: ``numba`` or ``numpy``; default :func:`engine`.
    """
    if (engine_name or engine()) == "numpy":
        return fn
    jitted = _COMPILED.get(fn)
    if jitted is None:
        numba = _install()
        jitted = numba.njit(cache=True)(fn)
        _COMPILED[fn] = jitted
    return jitted


def _source_hash() -> str:
    """Hash of every ``envs`` source file: compiled code from other sources is never reused."""
    digest = hashlib.sha256()
    for path in sorted(Path(__file__).resolve().parent.glob("*.py")):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def _install() -> Any:
    """Import Numba (cache directory first), register the helpers and SciPy's ``ndtr`` /
    ``ndtri`` for compiled code; return the ``numba`` module."""
    global _installed
    if "NUMBA_CACHE_DIR" not in os.environ:
        base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
        os.environ["NUMBA_CACHE_DIR"] = str(base / "qianchuan-rl" / "numba" / _source_hash())
    import numba

    if not _installed:
        from numba.extending import register_jitable

        for fn in _HELPERS:
            register_jitable(fn)
        _register_scipy_normal()
        _installed = True
    return numba


def _register_scipy_normal() -> None:
    """Let compiled code call ``scipy.special.ndtr`` and ``ndtri`` on floats and 1-D arrays,
    through SciPy's own C implementations (so both engines give the same numbers).

    The C functions are declared by symbol name, not by ctypes pointer, so code calling them
    can be cached on disk; the symbols are registered with LLVM in every process.
    """
    import llvmlite.binding as llvm
    from numba import types
    from numba.extending import get_cython_function_address, overload
    from scipy.special import ndtr, ndtri

    module = "scipy.special.cython_special"
    # ndtr is a fused (complex, double) function in cython_special; index 1 is double
    for ufunc, c_name in ((ndtr, "__pyx_fuse_1ndtr"), (ndtri, "ndtri")):
        symbol = f"qianchuan_scipy_{ufunc.__name__}"
        llvm.add_symbol(symbol, get_cython_function_address(module, c_name))
        overload(ufunc)(_elementwise_typer(
            types.ExternalFunction(symbol, types.float64(types.float64))))


def _elementwise_typer(c_function: Any) -> Callable:
    """A Numba typer applying the C function ``c_function`` to a float or a 1-D array."""
    from numba import types

    def typer(x):
        if isinstance(x, types.Float):
            return lambda x: c_function(x)
        if isinstance(x, types.Array) and x.ndim == 1:
            def elementwise(x):
                out = np.empty(x.shape[0])
                for i in range(x.shape[0]):
                    out[i] = c_function(x[i])
                return out
            return elementwise
        return None

    return typer
