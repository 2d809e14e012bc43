"""Where the project's data lives: the folder holding ``configs/`` (scenario and PPO presets,
tuning spaces, baselines), resolved once for every module that reads it.

In a checkout (``make setup``'s editable install) that is the checkout itself, the parent of
the ``envs`` package. A wheel (``pip install .``) carries the code only, so a program that
imports an installed copy names the data with ``$QIANCHUAN_ROOT``, or runs from a folder that
holds ``configs/``.
"""

from __future__ import annotations

import os
from pathlib import Path

ROOT_VARIABLE = "QIANCHUAN_ROOT"
_PACKAGE_PARENT = Path(__file__).resolve().parent.parent


def project_root() -> Path:
    """The folder whose ``configs/`` the presets are read from: ``$QIANCHUAN_ROOT`` when set
    (taken as given: a folder without ``configs/`` shows in the errors that name it), else the
    checkout this package sits in, else the working directory when it holds ``configs/``, else
    the package's parent (where a missing ``configs/`` is then reported)."""
    named = os.environ.get(ROOT_VARIABLE)
    if named:
        return Path(named).expanduser().resolve()
    if (_PACKAGE_PARENT / "configs").is_dir():
        return _PACKAGE_PARENT
    here = Path.cwd()
    if (here / "configs").is_dir():
        return here
    return _PACKAGE_PARENT


def config_dir(kind: str) -> Path:
    """``configs/<kind>/`` under :func:`project_root` (``scenarios``, ``ppo``, ``tune``,
    ``baselines``)."""
    return project_root() / "configs" / kind


def missing_folder_hint(folder: Path) -> str:
    """Why ``folder`` may be missing, for an error: an installed package without a checkout."""
    return (f"the folder {folder} does not exist (an installed package carries no configs/: "
            f"set ${ROOT_VARIABLE} to the checkout that holds them)")
