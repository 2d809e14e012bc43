"""Shared fixtures. ``tiny_run``: one tiny PPO run per test session, trained with the real
``agents.training.train.train`` (a few hundred steps, a tiny network), for every test that needs a
trained model or a run folder; ``tiny_anchored_run``: the same, anchored (residuals on
static's settings, ``agents.policies.anchored``)."""

from __future__ import annotations

import os
from pathlib import Path

# NumPy's BLAS on one thread: the suite's matrices are small, and threads on a loaded 2-core
# machine cost more than they save (calibration's Cholesky factors: 7x). Set before NumPy loads.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import pytest

from envs.seeds import REPORT_SEED

# Tests that share an expensive or stateful session fixture run in one xdist worker (``make
# test`` runs ``pytest -n auto --dist loadgroup``): the baselines' episodes are rolled out
# once, and one PostgreSQL server serves the shared-storage tests.
XDIST_GROUPS = {"baseline_profits": "baselines", "postgres_url": "postgres"}


def pytest_collection_modifyitems(config, items) -> None:
    """Mark each test that uses a fixture of :data:`XDIST_GROUPS` with its ``xdist_group``
    (no effect without ``--dist loadgroup``)."""
    for item in items:
        for fixture, group in XDIST_GROUPS.items():
            if fixture in getattr(item, "fixturenames", ()):
                item.add_marker(pytest.mark.xdist_group(group))
                break


# A tiny but complete run: 4 accounts x 32 days per rollout, 4 rollouts (512 steps), a
# validation and a checkpoint every 2 rollouts, validation on 4 seeds.
TINY_RUN_SETTINGS = (
    "experiment=tiny", "seed=7", "env.anchor=none", "env.paired_reward=false", "env.n_envs=4",
    "ppo.n_steps=32", "ppo.batch_size=64", "ppo.n_epochs=2", "policy.net_arch=16",
    "training.total_timesteps=512",
    "training.eval_freq=256", "training.checkpoint_freq=256", "training.eval_episodes=4",
    "training.progress_bar=false",
)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> Path:
    """The run folder of a tiny finished PPO run (scenario 3c, validated against static and
    the playbook)."""
    from agents.training.config import load_train_config
    from agents.training.train import train

    config = load_train_config(sets=TINY_RUN_SETTINGS)
    runs = tmp_path_factory.mktemp("runs")
    return train(config, runs_dir=runs, run_name="tiny", command=["pytest", "tiny_run"])


@pytest.fixture(scope="session")
def tiny_anchored_run(tmp_path_factory) -> Path:
    """The run folder of a tiny finished anchored PPO run (scenario 3c, ``env.anchor:
    static`` with the paired reward)."""
    from agents.training.config import load_train_config
    from agents.training.train import train

    config = load_train_config(sets=[*TINY_RUN_SETTINGS, "env.anchor=static",
                                     "env.paired_reward=true", "experiment=tiny_anchored"])
    runs = tmp_path_factory.mktemp("anchored_runs")
    return train(config, runs_dir=runs, run_name="anchored",
                 command=["pytest", "tiny_anchored_run"])


@pytest.fixture(scope="session")
def postgres_url():
    """A PostgreSQL URL for the shared-storage tests: ``$QCRL_TEST_POSTGRES_URL`` (CI starts a
    server with scripts/postgres.sh), else a server this session starts (and stops) with the
    same script. Skips only outside CI when no server can be started here."""
    import os
    import subprocess
    import tempfile

    url = os.environ.get("QCRL_TEST_POSTGRES_URL")
    if url:
        yield url
        return
    script = Path(__file__).resolve().parent.parent / "scripts" / "postgres.sh"
    folder = tempfile.mkdtemp(prefix="qcrl-test-pg-", dir="/tmp")  # readable by postgres
    started = subprocess.run(["bash", str(script), "start", folder], capture_output=True,
                             text=True, timeout=600)
    if started.returncode != 0:
        message = f"no PostgreSQL server: {started.stderr.strip()}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    yield started.stdout.strip().splitlines()[-1]
    subprocess.run(["bash", str(script), "stop", folder, "--purge"], capture_output=True,
                   timeout=120)


CALIBRATION_SEEDS = tuple(range(REPORT_SEED, REPORT_SEED + 32))  # 32 report seeds (contracts)


@pytest.fixture(scope="session")
def baseline_profits():
    """``values(scenario, objective="profit") -> {policy: value per episode (CNY)}`` for every
    registered policy on :data:`CALIBRATION_SEEDS` (profit, or the ``gmv_floor`` return),
    rolled out on first use and shared (the benchmark's honesty checks and the oracle's
    dominance read the same episodes)."""
    from agents.evaluation.rollout import episode_value
    from agents.policies import POLICIES, make_policy
    from envs.config import load_scenario

    cache: dict[tuple[str, str], dict] = {}

    def values(scenario: str, objective: str = "profit") -> dict:
        if (scenario, objective) not in cache:
            cfg = load_scenario(scenario, objective=objective)
            cache[scenario, objective] = {
                name: episode_value(cfg, make_policy(name, cfg), CALIBRATION_SEEDS)
                for name in sorted(POLICIES)}
        return cache[scenario, objective]

    return values


def alias_bomb(levels: int) -> str:
    """A PPO preset whose ``policy.net_arch`` nests YAML aliases ``levels`` deep, each level
    nine of the one before: a few hundred bytes that expand to over ``9 ** levels`` values."""
    names = "abcdefghij"[:levels]
    anchors = ["&a [1, 1, 1, 1, 1, 1, 1, 1, 1]"]
    anchors += [f"&{name} [{', '.join(['*' + before] * 9)}]"
                for before, name in zip(names, names[1:], strict=False)]
    return "policy:\n  net_arch: [[" + ", ".join(anchors) + "]]\n"


def load_script(name: str, script: str):
    """``scripts/<script>`` imported as module ``name`` (to call its ``main`` in-process)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        name, Path(__file__).resolve().parent.parent / "scripts" / script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
