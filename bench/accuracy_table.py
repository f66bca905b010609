"""The table of a folder of dev-split runs (``bench/gpu_session.sh accuracy``): one row
per variant, its mean accuracy over seeds, each seed's figure, and its mean difference
from the first variant's runs at the same seeds (paired: the same test clips and seeds,
so a seed's luck cancels).

    python bench/accuracy_table.py FOLDER      # reads FOLDER/s<seed><variant>.json

Variants are named as in the file names (the ``evaluate`` options with spaces and
slashes as ``_``), shown as written and in the order of FOLDER/variants.txt where it
exists.
"""
from __future__ import annotations

import json
import re
import statistics
import sys
from pathlib import Path


def runs(folder: Path) -> dict[str, dict[int, float]]:
    """variant -> seed -> accuracy (%), for every run that ended with its JSON."""
    out: dict[str, dict[int, float]] = {}
    for f in sorted(folder.glob("s*.json")):
        m = re.fullmatch(r"s(\d+)(.*)", f.stem)
        try:
            acc = json.loads(f.read_text())["network"]["accuracy"]
        except (ValueError, KeyError):
            continue                                  # a run that failed or was cut short
        out.setdefault(m.group(2), {})[int(m.group(1))] = 100 * acc
    return out


def file_name(variant: str) -> str:
    """A variant's part of its runs' file names (gpu_session.sh's evaluate_one)."""
    return variant.strip().replace(" ", "_").replace("/", "_")


def table(folder: Path) -> str:
    found = runs(folder)
    listed = folder / "variants.txt"
    written = {file_name(v): v.strip() for v in
               (listed.read_text().splitlines() if listed.exists() else []) if v.strip()}
    names = [v for v in written if v in found] + sorted(set(found) - set(written))
    if not names:
        return "no finished runs"
    base = found[names[0]]
    rows = ["| variant | runs | mean accuracy | per seed | vs first (same seeds) |",
            "|---|---|---|---|---|"]
    for name in names:
        acc = found[name]
        shared = sorted(set(acc) & set(base))
        diff = (f"{statistics.mean(acc[s] - base[s] for s in shared):+.1f} "
                f"({len(shared)} seeds)" if shared and name != names[0] else "")
        seeds = ", ".join(f"{acc[s]:.1f}" for s in sorted(acc))
        rows.append(f"| {written.get(name, name)} | {len(acc)} | "
                    f"{statistics.mean(acc.values()):.1f}% | {seeds} | {diff} |")
    return "\n".join(rows)


if __name__ == "__main__":
    print(table(Path(sys.argv[1])))
