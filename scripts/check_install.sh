#!/usr/bin/env bash
# Check that pyproject.toml's declared dependencies resolve to a working install, without the
# lock: a fresh virtualenv, CPU-only torch first (a plain `torch` pulls a multi-GB CUDA build),
# then `pip install .` of a copy of the source, `pip check`, the imports of every package
# module, and one small evaluation and one recommendation with what pip resolved.
#
#   bash scripts/check_install.sh        # PYTHON=python3.11 by default; KEEP=1 keeps the venv
#
# Exits non-zero, naming the step, when any step fails. Used by .ci/run.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-python3.11}
work=$(mktemp -d /tmp/qcrl-install-check.XXXXXX)
[[ "${KEEP:-0}" == 1 ]] || trap 'rm -rf "$work"' EXIT
step() { echo "check_install: $*" >&2; }

step "fresh virtualenv in $work ($($python --version))"
"$python" -m venv "$work/venv"
py="$work/venv/bin/python"
"$py" -m pip install --quiet --upgrade pip
step "pip install torch==2.13.0 (CPU build)"
"$py" -m pip install --quiet torch==2.13.0
# a copy of the tracked tree: pip builds in place, and the clone must stay clean
mkdir "$work/src"
(cd "$root" && git ls-files -z --cached --others --exclude-standard |
    tar --null --files-from=- --ignore-failed-read -cf -) | tar -xf - -C "$work/src"
step "pip install . (pyproject.toml bounds, no lock)"
"$py" -m pip install --quiet "$work/src"
"$py" -m pip check
"$py" -m pip list --format=freeze 2>/dev/null |
    grep -iE '^(torch|numpy|numba|scipy|pandas|arch|rliable|stable.baselines3|gymnasium|optuna|onnx|onnxruntime|onnxscript)==' |
    tr '\n' ' ' >&2
echo >&2

cd "$work"  # away from the source: the installed package is what gets imported
step "import every module of the installed package"
"$py" - <<'EOF'
import importlib
import pkgutil

import agents
import envs

names = [m.name for pkg in (envs, agents)
         for m in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + ".")]
for name in names:
    importlib.import_module(name)
assert "site-packages" in envs.__file__, envs.__file__
print(f"imported {len(names)} modules from {envs.__file__.rsplit('/envs/', 1)[0]}")
EOF
# The scripts come from the checkout and import the installed package; the wheel carries no
# configs/, so $QIANCHUAN_ROOT names the checkout's (envs/paths.py), as a user of the wheel
# would. models/ is found beside the scripts.
export QIANCHUAN_ROOT="$root"
step "one small evaluation (the playbook and the constant rule, 3c, 4 seeds)"
"$py" "$root/scripts/evaluate.py" --policies playbook constant --scenarios 3c \
    --episodes 4 --out "$work/eval" --no-progress --bootstrap-reps 200
step "one recommendation from the shipped policy"
"$py" "$root/scripts/recommend.py" --history "$root/examples/report_en.csv" \
    >"$work/recommend.txt"
head -5 "$work/recommend.txt" >&2
step "ok"
