"""What `genrecnn bench` does besides parsing options: time a sweep of sizes or an
architecture's layers, write CSV files and plots, and format the tables."""
from __future__ import annotations

import csv
from collections import defaultdict
from pathlib import Path

import numpy as np

from genrecnn.engine import sweeps
from genrecnn.engine.architectures import build_network, load_architecture
from genrecnn.engine.autoplace.compare import compare_with_single
from genrecnn.engine.ops import check_precision
from genrecnn.errors import GenrecnnError
from genrecnn.fsutil import atomic_path, writable_folder
from genrecnn.run import plots


def write_csv(path: Path, rows: list[dict]) -> None:
    fields: list[str] = []
    for r in rows:
        fields.extend(k for k in r if k not in fields)
    with atomic_path(path, suffix=".csv") as tmp:
        with open(tmp, "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=fields)
            w.writeheader()
            w.writerows(rows)


def _ms(s: float) -> str:
    return f"{s * 1e3:.3f}" if s < 0.01 else f"{s * 1e3:.1f}"


def table_layers(rows: list[dict], key: str) -> list[str]:
    """Rows grouped by (kind, key) with one 'fwd / bwd [/ upd]' ms column per backend."""
    backends = list(dict.fromkeys(r["backend"] for r in rows))
    cells: dict = defaultdict(dict)
    order = []
    for r in rows:
        ident = (r["kind"], r[key], r["shape"])
        if ident not in cells:
            order.append(ident)
        cells[ident].setdefault(r["backend"], {})[r["phase"]] = r["median_s"]
    w = 22
    lines = [f"{'kind':<8}{key:<10}{'shape':<18}" + "".join(f"{b:>{w}}" for b in backends),
             f"{'':<36}" + "".join(f"{'fwd / bwd [/ upd] ms':>{w}}" for _ in backends)]
    for ident in order:
        kind, k, shape = ident
        row = f"{kind:<8}{str(k):<10}{shape:<18}"
        for b in backends:
            ph = cells[ident].get(b)
            row += f"{' / '.join(_ms(ph[p]) for p in ('forward', 'backward', 'update') if p in ph) if ph else '-':>{w}}"
        lines.append(row)
    return lines


def table_transfers(rows: list[dict]) -> list[str]:
    lines = [f"{'transfer':<22}{'shape':<20}{'median ms':>12}{'GB/s':>9}"]
    for r in rows:
        nbytes = r["elements"] * r.get("itemsize", 4)
        gbs = nbytes / r["median_s"] / 1e9 if r["median_s"] > 0 else float("inf")
        lines.append(f"{r['pair'].replace('>', ' -> '):<22}{r['shape']:<20}"
                     f"{_ms(r['median_s']):>12}{gbs:>9.2f}")
    return lines


def pick_backends(reg, names: list[str] | None):
    """Backend instances of ``names`` (None: every available one)."""
    names = names or reg.available_names()
    if not names:
        raise GenrecnnError("no backend is available here; see `genrecnn backends`")
    return [reg.get(n) for n in names]   # unknown/unavailable: one clear line from the registry


def pick_kinds(spec: str | None, known) -> list[str]:
    kinds = [s.strip() for s in spec.split(",") if s.strip()] if spec else list(known)
    bad = [k for k in kinds if k not in known]
    if bad or not kinds:
        raise GenrecnnError(f"unknown layer kind(s) {', '.join(bad) or '(none)'} in --layers; "
                            f"use some of {', '.join(known)}")
    return kinds


def compare_auto(backends, arch: str, batch_size: int, mels: int, frames: int, dtype: str,
                 optimizer: str, reps: int, out: Path, echo, precision: str = "fp32") -> dict:
    """Whole training steps under the auto plan and each single backend; compare_auto.csv."""
    check_precision(precision, dtype)
    cfg = load_architecture(arch)
    result = compare_with_single(
        lambda: build_network(cfg, (mels, frames), 10, dtype=dtype, precision=precision),
        batch_size,
        backends=[b.name for b in backends], optimizer=optimizer, reps=reps, echo=echo)
    writable_folder(out, "output folder", "choose another with --out")
    write_csv(out / "compare_auto.csv", result["rows"])
    return result


def run_bench(backends, kinds, *, arch: str | None, batch_size: int, mels: int, frames: int,
              sizes: str, reps: int, budget: float, max_call: float, dtype: str,
              optimizer: str, out: Path, echo, progress=None, precision: str = "fp32") -> dict:
    """Time a size sweep (no ``arch``) or an architecture's layers at their real shapes,
    plus transfers, conv and fc layers at ``precision`` (on the backends that offer it);
    write CSV files and plots to ``out``. Returns rows, files, skips."""
    check_precision(precision, dtype)
    limits = sweeps.SweepLimits(max_call_s=max_call)
    names = ", ".join(b.name for b in backends)
    at = "" if precision == "fp32" else f" ({precision} products)"
    if arch:
        network = build_network(load_architecture(arch), (mels, frames), 10, dtype=dtype,
                                precision=precision)
        echo(f"bench {arch}: input {mels}x{frames}, batch {batch_size}, {dtype}{at}, "
             f"{optimizer} update, backends {names}")
        layer_rows = sweeps.arch_layers(network, backends, batch_size, optimizer=optimizer,
                                       kinds=kinds, reps=reps, budget=budget, progress=progress)
        xfer_rows = sweeps.arch_transfers(network, backends, batch_size, reps=reps,
                                         budget=budget, progress=progress)
    else:
        size_list = sweeps.parse_sizes(sizes)
        exps = [int(np.log2(s)) for s in size_list]
        echo(f"bench sweep: 2^{exps[0]}..2^{exps[-1]} input elements ({len(exps)} sizes), "
             f"{dtype}{at}, layers {', '.join(kinds)}, backends {names}")
        layer_rows = sweeps.sweep_layers(backends, kinds, size_list, dtype, reps=reps,
                                        budget=budget, limits=limits, progress=progress,
                                        precision=precision)
        xfer_rows = sweeps.sweep_transfers(backends, size_list, dtype, reps=reps, budget=budget,
                                          limits=limits, progress=progress)
    for r in xfer_rows:
        r["itemsize"] = np.dtype(dtype).itemsize
    writable_folder(out, "output folder", "choose another with --out")
    files = [out / "layers.csv", out / "transfers.csv"]
    write_csv(files[0], layer_rows)
    write_csv(files[1], xfer_rows)
    if layer_rows:
        files += ([plots.bench_arch(layer_rows, out)] if arch
                  else plots.bench_sweep(layer_rows, out))
    if xfer_rows and not arch:
        files.append(plots.bench_transfers(xfer_rows, out))
    return {"layers": layer_rows, "transfers": xfer_rows, "skipped": limits.skipped,
            "files": [str(f) for f in files], "key": "layer" if arch else "elements"}
