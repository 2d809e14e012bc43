"""Where the presets are read from (envs/paths.py): the checkout, or $QIANCHUAN_ROOT for an
installed package, with an error that says which folder is missing."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from envs.paths import ROOT_VARIABLE, config_dir, project_root

CHECKOUT = Path(__file__).resolve().parent.parent
_LOAD_3C = "from envs.config import load_scenario; print(load_scenario('3c').aov_cny)"


def _run(code: str, root: Path | None, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != ROOT_VARIABLE}
    if root is not None:
        env[ROOT_VARIABLE] = str(root)
    env["PYTHONPATH"] = str(CHECKOUT)
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


def test_checkout_is_the_default_root(monkeypatch):
    monkeypatch.delenv(ROOT_VARIABLE, raising=False)
    assert project_root() == CHECKOUT
    assert (config_dir("scenarios") / "3c.yaml").is_file()


def test_variable_names_another_root(monkeypatch, tmp_path):
    monkeypatch.setenv(ROOT_VARIABLE, str(tmp_path))
    assert project_root() == tmp_path.resolve()
    assert config_dir("ppo") == tmp_path.resolve() / "configs" / "ppo"


def test_presets_are_read_from_the_named_root(tmp_path):
    """A copy of configs/scenarios under another root is what loads, edits and all."""
    shutil.copytree(CHECKOUT / "configs" / "scenarios", tmp_path / "configs" / "scenarios")
    preset = tmp_path / "configs" / "scenarios" / "3c.yaml"
    preset.write_text(preset.read_text().replace("aov_cny: 800.0", "aov_cny: 812.5"))
    done = _run(_LOAD_3C, tmp_path, tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "812.5"


def test_a_root_without_configs_is_named_in_the_error(tmp_path):
    done = _run(_LOAD_3C, tmp_path, tmp_path)
    assert done.returncode != 0
    assert f"{tmp_path / 'configs' / 'scenarios'} does not exist" in done.stderr
    assert ROOT_VARIABLE in done.stderr
