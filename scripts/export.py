"""Export a run's checkpoint to ``runs/<run>/export/{policy.onnx, policy.json}``.

    python scripts/export.py --run runs/<run> [--checkpoint best|final|step_N]

Checks parity against ``model.predict`` every time; a failure (or a missing run or
checkpoint) prints the reason and exits with code 2.
"""

from __future__ import annotations

import argparse
import shlex
import sys


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--run", required=True, help="runs/<run> (a folder with run.json)")
    p.add_argument("--checkpoint", default="best",
                   help="best, final, latest or step_<N> (default: %(default)s)")
    p.add_argument("--out", help="write here instead of <run>/export/")
    args = p.parse_args(argv)
    from agents.export.errors import ExportError  # after --help
    from agents.export.exporter import describe_export, export_run

    try:
        out = export_run(args.run, args.checkpoint, args.out,
                         command=shlex.join([sys.executable, *sys.argv]))
    except ExportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(describe_export(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
