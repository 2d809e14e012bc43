"""The run folder of the contracts: names, ``run.json``, atomic model saves, checkpoint lookup.

::

    runs/<scenario>__<exp>__<seed>__<time>/
      run.json  config.yaml  tb/  .lock (one writer at a time: agents.run_lock)
      checkpoints/step_<N>/{model.zip, vecnormalize.pkl}
      best/{model.zip, vecnormalize.pkl, eval.json}   final/{...}

A folder without ``run.json`` is not a run. Model folders are written into a temporary
sibling and moved into place with ``os.replace``, so a kill (even SIGKILL) during a save
never leaves a damaged folder under the final name.
"""

from __future__ import annotations

import json
import os
import pickle
import platform
import re
import shutil
import sys
import time
import zipfile
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

RUN_JSON = "run.json"
CONFIG_YAML = "config.yaml"
TB_DIR = "tb"
CHECKPOINTS_DIR = "checkpoints"
MODEL_FILE = "model.zip"
VECNORMALIZE_FILE = "vecnormalize.pkl"
EVAL_FILE = "eval.json"  # validation results of the model in the same folder
_MODEL_MEMBERS = ("data", "policy.pth")  # what stable-baselines3's load needs in a model.zip
_STEP_DIR = re.compile(r"^step_(\d+)$")
_RUN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.=+-]*$")
PACKAGES = ("numpy", "scipy", "torch", "gymnasium", "stable_baselines3", "tensorboard",
            "PyYAML", "qianchuan-rl")


class RunError(ValueError):
    """A run folder is missing, not a run, already exists or lacks a requested model."""


def default_run_name(scenario: str, experiment: str, seed: int,
                     when: float | None = None) -> str:
    """``<scenario>__<exp>__<seed>__<YYYYmmdd-HHMMSS>`` (local time)."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(when))
    return f"{scenario}__{experiment}__{seed}__{stamp}"


def create_run_dir(runs_dir: Path, name: str) -> Path:
    """Make a new, empty run folder; an existing name is an error, never an overwrite."""
    if not _RUN_NAME.match(name):
        raise RunError(f"run name {name!r}: use letters, digits and '_.=+-' (no slashes)")
    path = Path(runs_dir) / name
    Path(runs_dir).mkdir(parents=True, exist_ok=True)
    try:
        path.mkdir()
    except FileExistsError:
        raise RunError(f"run {str(path)!r} already exists: choose another --run-name, or "
                       f"continue it with --resume {path}") from None
    return path


def resolve_run(run: str | Path, runs_dir: Path | None = None) -> Path:
    """A run folder given by path, or by name under ``runs_dir``; it must hold ``run.json``."""
    path = Path(run)
    if not path.exists() and runs_dir is not None and (Path(runs_dir) / run).exists():
        path = Path(runs_dir) / run
    if not path.is_dir():
        raise RunError(f"no run folder {str(run)!r}")
    if not (path / RUN_JSON).is_file():
        raise RunError(f"{str(path)!r} is not a run: it has no {RUN_JSON}")
    return path


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    """Write JSON to ``path`` through a temporary file and ``os.replace``."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2, sort_keys=False, default=str)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def write_text_atomic(path: Path, text: str) -> None:
    """Write text to ``path`` through a temporary file and ``os.replace``."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def read_run_json(run_dir: Path) -> dict[str, Any]:
    """The run's record."""
    try:
        return json.loads((Path(run_dir) / RUN_JSON).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise RunError(f"{run_dir}: cannot read {RUN_JSON} ({exc})") from None


def update_run_json(run_dir: Path, **fields: Any) -> dict[str, Any]:
    """Merge ``fields`` into ``run.json`` (atomically) and stamp ``updated``."""
    data = read_run_json(run_dir)
    data.update(fields)
    data["updated"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    write_json_atomic(Path(run_dir) / RUN_JSON, data)
    return data


def package_versions() -> dict[str, str]:
    """Versions of Python and the packages a run depends on."""
    out = {"python": platform.python_version(), "platform": platform.platform()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


# Environment variables that change which code paths compute a run's numbers (and so whether
# its figures repeat on another machine): docs/market-model.md#what-is-reproducible-where.
CODE_PATH_VARIABLES = ("QIANCHUAN_ENGINE", "QIANCHUAN_NUMBA_CPU", "NUMBA_CPU_NAME",
                       "NUMBA_CPU_FEATURES", "NPY_DISABLE_CPU_FEATURES", "ATEN_CPU_CAPABILITY",
                       "MKL_CBWR", "GLIBC_TUNABLES", "OMP_NUM_THREADS")


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``), else what ``platform`` knows."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_context() -> dict[str, Any]:
    """What a run's figures depend on besides the code and the package versions: the CPU,
    the simulator's engine and code generation, NumPy's SIMD paths, the C library, torch's
    kernel level (when torch is loaded) and the variables that select code paths."""
    from envs.compiled import codegen_description

    out: dict[str, Any] = {"cpu": cpu_model(), "cores": os.cpu_count()}
    out.update((k, v) for k, v in codegen_description().items()
               if k not in ("python", "numpy", "numba", "llvmlite"))
    if "torch" in sys.modules:
        out["torch_cpu_capability"] = sys.modules["torch"].backends.cpu.get_cpu_capability()
    out["variables"] = {k: os.environ[k] for k in CODE_PATH_VARIABLES if k in os.environ}
    return out


def code_version() -> dict[str, Any]:
    """The project's git commit and whether the working tree had changes (when in git)."""
    import subprocess

    root = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], check=True,
                                capture_output=True, text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain",
                                "--untracked-files=no"], check=True, capture_output=True,
                               text=True, timeout=10).stdout.strip() != ""
    except (OSError, subprocess.SubprocessError):
        return {"git_commit": None, "git_dirty": None}
    return {"git_commit": commit, "git_dirty": dirty}


def command_line() -> list[str]:
    """The command that started this process."""
    return [sys.executable, *sys.argv]


# ---------------------------------------------------------------------------------------------
def _fsync_tree(folder: Path) -> None:
    for child in folder.iterdir():
        with open(child, "rb") as f:
            os.fsync(f.fileno())


def save_model_dir(dest: Path, model, vecnormalize, info: dict[str, Any] | None = None) -> Path:
    """Save ``model.zip`` + ``vecnormalize.pkl`` (+ ``eval.json``) as the folder ``dest``.

    The files are written into a temporary sibling first; an existing ``dest`` is moved
    aside to ``.<name>.old`` just before the new folder takes its name (see
    :func:`restore_model_dirs` for a kill between those two renames).
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.tmp-{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    model.save(tmp / MODEL_FILE)
    vecnormalize.save(str(tmp / VECNORMALIZE_FILE))
    if info is not None:
        (tmp / EVAL_FILE).write_text(json.dumps(info, indent=2, default=float) + "\n",
                                     encoding="utf-8")
    _fsync_tree(tmp)
    if dest.exists():
        old = dest.with_name(f".{dest.name}.old")
        if old.exists():
            shutil.rmtree(old)
        os.replace(dest, old)
        os.replace(tmp, dest)
        shutil.rmtree(old)
    else:
        os.replace(tmp, dest)
    return dest


def restore_model_dirs(run_dir: Path) -> None:
    """Repair what a kill during :func:`save_model_dir` can leave: put back a folder moved
    aside (``.best.old`` without ``best``) and delete unfinished temporary folders."""
    for parent in (Path(run_dir), Path(run_dir) / CHECKPOINTS_DIR):
        if not parent.is_dir():
            continue
        for child in parent.iterdir():
            if child.name.startswith(".") and child.name.endswith(".old"):
                target = parent / child.name[1:-len(".old")]
                if target.exists():
                    shutil.rmtree(child)
                else:
                    os.replace(child, target)
            elif child.name.startswith(".") and ".tmp-" in child.name and child.is_dir():
                shutil.rmtree(child)


def _complete(folder: Path) -> bool:
    return (folder / MODEL_FILE).is_file() and (folder / VECNORMALIZE_FILE).is_file()


def damaged_file(folder: Path) -> tuple[Path, str] | None:
    """The first file of a complete model folder that cannot be read back (a ``model.zip``
    cut short or with a bad CRC, a ``vecnormalize.pkl`` that does not unpickle), with why;
    ``None`` when both read. The folder is a run's own (never outside input)."""
    model = Path(folder) / MODEL_FILE
    try:
        with zipfile.ZipFile(model) as archive:
            missing = [m for m in _MODEL_MEMBERS if m not in archive.namelist()]
            bad = archive.testzip()  # reads every member and checks its CRC
        # a cut file can still open as a zip: the torch archives stored inside it are zips
        if missing:
            return model, f"no {', '.join(missing)} in it (cut short?)"
        if bad is not None:
            return model, f"member {bad!r} fails its CRC check"
    except Exception as exc:  # zipfile raises several kinds on a torn file
        return model, f"{type(exc).__name__}: {exc}"
    stats = Path(folder) / VECNORMALIZE_FILE
    try:
        with open(stats, "rb") as f:
            pickle.load(f)
    except Exception as exc:  # EOFError, UnpicklingError, ... on a torn file
        return stats, f"{type(exc).__name__}: {exc}"
    return None


def checkpoint_steps(run_dir: Path) -> list[int]:
    """Steps of the complete checkpoints, ascending."""
    root = Path(run_dir) / CHECKPOINTS_DIR
    if not root.is_dir():
        return []
    steps = []
    for child in root.iterdir():
        match = _STEP_DIR.match(child.name)
        if match and _complete(child):
            steps.append(int(match.group(1)))
    return sorted(steps)


def newest_intact_checkpoint(run_dir: Path, log: Callable[[str], None]) -> Path | None:
    """The newest complete checkpoint whose files read back (:func:`damaged_file`), or
    ``None``. Each newer, damaged one is moved aside to ``checkpoints/.step_<N>.damaged`` (out
    of every lookup, kept to inspect), with one line to ``log`` naming the bad file and the
    checkpoint used instead. Call it only while holding the run's lock."""
    damaged = []
    used = None
    for step in reversed(checkpoint_steps(run_dir)):
        folder = Path(run_dir) / CHECKPOINTS_DIR / f"step_{step}"
        problem = damaged_file(folder)
        if problem is None:
            used = folder
            break
        damaged.append(problem)
    for path, why in damaged:
        folder = path.parent
        aside = folder.with_name(f".{folder.name}.damaged")
        if aside.exists():
            shutil.rmtree(aside)
        os.replace(folder, aside)
        instead = used if used is not None else "step 0 (no intact checkpoint is left)"
        log(f"warning: {path} is damaged ({why}); moved aside to {aside.name}, "
            f"resuming from {instead}")
    return used


def model_dir(run_dir: Path, checkpoint: str = "best") -> Path:
    """The folder of a run's model: ``best``, ``final``, ``latest`` (last checkpoint) or
    ``step_<N>``; a missing or incomplete one is a :class:`RunError`."""
    run_dir = Path(run_dir)
    if checkpoint == "latest":
        steps = checkpoint_steps(run_dir)
        if not steps:
            raise RunError(f"{run_dir}: no complete checkpoint yet")
        return run_dir / CHECKPOINTS_DIR / f"step_{steps[-1]}"
    if checkpoint in ("best", "final"):
        folder = run_dir / checkpoint
        if not folder.exists() and (run_dir / f".{checkpoint}.old").exists():
            folder = run_dir / f".{checkpoint}.old"  # killed between the two renames of a save
    elif _STEP_DIR.match(checkpoint):
        folder = run_dir / CHECKPOINTS_DIR / checkpoint
    else:
        raise RunError(f"checkpoint {checkpoint!r}: use 'best', 'final', 'latest' or 'step_<N>'")
    if not _complete(folder):
        have = ", ".join(f"step_{s}" for s in checkpoint_steps(run_dir)) or "none"
        status = read_run_json(run_dir).get("status", "?")
        raise RunError(f"{run_dir}: no complete {checkpoint!r} model (run status: {status}; "
                       f"checkpoints: {have})")
    return folder


def read_eval(folder: Path) -> dict[str, Any] | None:
    """The validation record saved with a model folder (``best/``, ``final/``), if any."""
    path = Path(folder) / EVAL_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None
