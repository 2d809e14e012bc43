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

Code generation (``$QIANCHUAN_NUMBA_CPU``): ``portable`` (the default) compiles for a generic
x86-64 CPU (Numba's ``NUMBA_CPU_NAME=generic``: SSE2, no FMA or AVX), so the compiled code is
the same instructions on every machine; ``host`` compiles for this CPU's name and features.
An explicit ``NUMBA_CPU_NAME`` wins over both. What each setting reproduces where, and what
portable code costs in speed, is measured in ``docs/market-model.md#speed``.

Numba is imported on the first call of :func:`compiled`, never at import time. Compiled code
is cached on disk under ``~/.cache/qianchuan-rl/numba/<key>`` (``$NUMBA_CACHE_DIR/<key>`` if
that is set). The key (:func:`cache_key`) hashes the ``envs`` sources, the versions of
Python, NumPy, Numba and llvmlite, and the CPU name and features the code is compiled for,
so code compiled from other sources, by another Numba or for another CPU is never loaded
(Numba's own cache only notices edits to the file of the function it compiles, not to the
helpers it calls; it also keys by CPU and version, a second guard).
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
CODEGEN_VARIABLE = "QIANCHUAN_NUMBA_CPU"
CODEGENS = ("portable", "host")

_HELPERS: list[Callable] = []  # plain functions that kernels call (compiled inline)
_COMPILED: dict[Callable, Callable] = {}
_installed = False


def engine() -> str:
    """The simulator's engine: ``$QIANCHUAN_ENGINE`` (``numba`` unless set)."""
    name = os.environ.get(ENGINE_VARIABLE, "numba").strip().lower() or "numba"
    if name not in ENGINES:
        raise ValueError(f"{ENGINE_VARIABLE}={name!r}: expected one of {', '.join(ENGINES)}")
    return name


def codegen() -> str:
    """The compiled engine's code generation: ``$QIANCHUAN_NUMBA_CPU`` (``portable`` unless
    set, or ``host``)."""
    name = os.environ.get(CODEGEN_VARIABLE, "portable").strip().lower() or "portable"
    if name not in CODEGENS:
        raise ValueError(f"{CODEGEN_VARIABLE}={name!r}: expected one of {', '.join(CODEGENS)}")
    return name


def target_cpu() -> tuple[str, str]:
    """The CPU name and feature string Numba compiles for: ``NUMBA_CPU_NAME`` and
    ``NUMBA_CPU_FEATURES`` when set, else ``generic`` with no features (portable) or this
    CPU's (host). Imports llvmlite, not Numba."""
    name = os.environ.get("NUMBA_CPU_NAME", "").strip()
    features = os.environ.get("NUMBA_CPU_FEATURES")
    if not name and codegen() == "portable":
        name = "generic"
    if name.lower() == "generic":
        return "generic", features or ""
    import llvmlite.binding as llvm

    return (name or llvm.get_host_cpu_name(),
            features if features is not None else llvm.get_host_cpu_features().flatten())


def toolchain_versions() -> dict[str, str]:
    """Versions of Python, NumPy, Numba and llvmlite: what the compiled code depends on
    (no import of Numba itself)."""
    import platform
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version(), "numpy": np.__version__}
    for package in ("numba", "llvmlite"):
        try:
            out[package] = version(package)
        except PackageNotFoundError:
            out[package] = "not installed"
    return out


def cache_key(facts: dict[str, str] | None = None) -> str:
    """The compiled-code cache's key: a hash of the ``envs`` sources and ``facts`` (default:
    :func:`build_facts`, the versions and the target CPU)."""
    facts = build_facts() if facts is None else facts
    digest = hashlib.sha256(_source_hash().encode())
    for name in sorted(facts):
        digest.update(f"\0{name}={facts[name]}".encode())
    return digest.hexdigest()[:16]


def build_facts() -> dict[str, str]:
    """What compiled code is built from besides the sources: versions and the target CPU."""
    cpu, features = target_cpu()
    return {**toolchain_versions(), "cpu": cpu, "cpu_features": features}


def cache_dir() -> Path:
    """Where compiled code is cached: ``<base>/<cache_key()>``, the base being
    ``$NUMBA_CACHE_DIR`` if set, else ``$XDG_CACHE_HOME/qianchuan-rl/numba`` (``~/.cache``
    by default)."""
    if os.environ.get("NUMBA_CACHE_DIR"):
        base = Path(os.environ["NUMBA_CACHE_DIR"])
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
        base = base / "qianchuan-rl" / "numba"
    return base / cache_key()


def codegen_description() -> dict[str, str]:
    """The simulator's engine and, for the compiled one, its code generation, target CPU and
    versions; NumPy's SIMD extensions in use; the C library: what a run's figures depend on."""
    import platform

    out = {"engine": engine()}
    if out["engine"] == "numba":
        cpu, features = target_cpu()
        out.update(codegen=codegen(), numba_cpu=cpu,
                   numba_cpu_features=features if len(features) < 200 else
                   f"{len(features.split(','))} host features")
    try:
        from numpy._core._multiarray_umath import __cpu_dispatch__, __cpu_features__

        out["numpy_simd"] = " ".join(name for name in __cpu_dispatch__
                                     if __cpu_features__.get(name)) or "baseline only"
    except ImportError:  # NumPy moved its private module: say so rather than guess
        out["numpy_simd"] = "unknown"
    out["libc"] = " ".join(platform.libc_ver()) or "unknown"
    out.update(toolchain_versions())
    return out


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
    """Import Numba, point it at this build's cache directory and target CPU (in its settings
    object, not the environment, so child processes choose for themselves), register the
    helpers and SciPy's ``ndtr`` / ``ndtri`` for compiled code; return the ``numba`` module.

    The target CPU takes effect if nothing in this process has compiled with Numba before
    (Numba fixes its target machine at its first compilation).
    """
    global _installed
    import numba

    if not _installed:
        from numba.extending import register_jitable

        cpu, features = target_cpu()
        numba.config.CACHE_DIR = str(cache_dir())
        numba.config.CPU_NAME, numba.config.CPU_FEATURES = cpu, features
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
