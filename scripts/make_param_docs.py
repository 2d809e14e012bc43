"""Write docs/parameters.md from the scenario config's field metadata.

    python scripts/make_param_docs.py          # rewrite the file
    python scripts/make_param_docs.py --check  # exit 1 if the file is out of date
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from envs.config import (  # noqa: E402
    describe_parameters,
    list_scenarios,
    list_unseen,
    load_scenario,
)

TARGET = ROOT / "docs" / "parameters.md"


def _fmt(value) -> str:
    if isinstance(value, tuple):
        return ", ".join(_fmt(v) for v in value)
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def render() -> str:
    """The Markdown text of docs/parameters.md."""
    lines = [
        "# Scenario parameters",
        "",
        "Generated from `envs/config.py` by `python scripts/make_param_docs.py`; do not edit.",
        "Defaults are the `3c` scenario's. `(u)`: from unofficial operator guides, a default",
        "and a randomisation range rather than an exact truth.",
        "",
        "| parameter | default | unit | range | source | meaning |",
        "|---|---|---|---|---|---|",
    ]
    for row in describe_parameters():
        lo, hi = row["lo"], row["hi"]
        rng = "" if lo is None and hi is None else f"{_fmt(lo)} – {_fmt(hi)}"
        lines.append(f"| `{row['name']}` | {_fmt(row['default'])} | {row['unit']} | {rng} | "
                     f"{row['source'] if row['unit'] not in ('switch', '-') else ''} | "
                     f"{row['doc']} |")
    lines += ["", "## Scenario presets", "",
              "| scenario | AOV (CNY) | margin | refund rate | typical target | pool mean ROI | "
              "sigma | break-even ROI | pool share at typical target |",
              "|---|---|---|---|---|---|---|---|---|"]
    for name in list_scenarios():
        c = load_scenario(name)
        lines.append(f"| `{name}` | {c.aov_cny:g} | {c.margin:g} | {c.refund_rate:g} | "
                     f"{c.typical_target_roi:g} | {c.pool_mean_roi:g} | {c.pool_sigma:g} | "
                     f"{c.breakeven_roi:.2f} | {c.typical_pool_share:.2f} |")
    lines += ["", "## Unseen markets", "",
              "Perturbed markets in `configs/scenarios/unseen/` that no training or tuning uses "
              "(training refuses them);",
              "`scripts/evaluate.py --unseen` plays them on seeds from 30000. Each is its base "
              "scenario with the changes listed.", "",
              "| market | base | changes from the base | break-even ROI | why |",
              "|---|---|---|---|---|"]
    for market in list_unseen():
        c, base = load_scenario(market.preset).to_dict(), load_scenario(market.base)
        changes = ", ".join(f"`{k}` {_fmt(base.to_dict()[k])} → {_fmt(v)}"
                            for k, v in c.items()
                            if k != "name" and base.to_dict()[k] != v)
        lines.append(f"| `{market.preset}` | `{market.base}` | {changes} | "
                     f"{load_scenario(market.preset).breakeven_roi:.2f} | {market.reason} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if the file is stale")
    args = parser.parse_args()
    text = render()
    if args.check:
        if not TARGET.exists() or TARGET.read_text(encoding="utf-8") != text:
            print(f"{TARGET.relative_to(ROOT)} is out of date: run scripts/make_param_docs.py",
                  file=sys.stderr)
            return 1
        return 0
    TARGET.parent.mkdir(exist_ok=True)
    tmp = TARGET.with_suffix(".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(TARGET)
    print(f"wrote {TARGET.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
