"""The benchmark script runs (smoke mode) and records its figures with the machine."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


# a guard against a hang, not a time limit (a benchmark measures, it is not a timed test): the
# smoke run compiles the simulator for this CPU's own instructions when that code is not cached
# yet (after any change to envs/), 220 s on an idle 2-core Zen 3 and about twice that beside
# the rest of the suite, where 300 s was too little
HANG_GUARD_S = 1200


def test_benchmark_smoke_writes_figures(tmp_path):
    done = subprocess.run([sys.executable, "scripts/benchmark.py", "--smoke", "--out",
                           str(tmp_path)], cwd=ROOT, capture_output=True, text=True,
                          timeout=HANG_GUARD_S)
    assert done.returncode == 0, done.stderr
    (path,) = tmp_path.glob("benchmark__3c__*__smoke.json")
    result = json.loads(path.read_text())
    assert result["model_account_days_per_s"]["64"] > 0
    assert 0 < result["env_share_of_training"]["default config"]["median"] < 1
    assert result["machine"]["cores"]
    assert result["machine"]["codegen"] in ("portable", "host")
    for name in ("portable", "host"):
        assert result["by_codegen"][name]["64"]["simulator_per_s"] > 0
    assert result["by_codegen"]["portable"]["64"]["numba_cpu"] == "generic"
    assert result["by_codegen"]["host"]["64"]["numba_cpu"] != "generic"


def test_benchmark_rejects_unknown_scenario(tmp_path):
    done = subprocess.run([sys.executable, "scripts/benchmark.py", "--smoke", "--scenario", "mars",
                           "--out", str(tmp_path)], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 2
    assert "mars" in done.stderr and "Traceback" not in done.stderr
