"""Generated docs match the code they describe."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_parameter_table_is_up_to_date():
    done = subprocess.run([sys.executable, "scripts/make_param_docs.py", "--check"], cwd=ROOT,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_every_parameter_is_documented_with_a_unit():
    from envs.config import describe_parameters

    for row in describe_parameters():
        assert row["unit"] and row["doc"], row["name"]
