"""`genrecnn bench`: per-layer forward/backward timings per backend, and transfer costs.

Two modes: a sweep over input sizes (2^LO..2^HI elements) per layer kind, as the
dissertation's Figures 4.10-4.19, or every layer of an architecture at its real
shapes and batch size. Writes CSV files and log-log PNG plots to --out; with
--compare-auto also times whole training steps under the auto plan and under
each single-backend placement.
"""
from __future__ import annotations

import csv
import json
from collections import defaultdict
from pathlib import Path

import click
import numpy as np

from genrecnn.engine import bench
from genrecnn.errors import GenrecnnError
from genrecnn.fsutil import atomic_path
from genrecnn.engine.layers import KINDS
from genrecnn.engine.ops import DTYPES
from genrecnn.engine.registry import registry

DEFAULT_SIZES = "5:20:3"


def _pick_backends(spec: str | None):
    reg = registry()
    names = [s.strip() for s in spec.split(",") if s.strip()] if spec else reg.available_names()
    if not names:
        raise GenrecnnError("no backend is available here; see `genrecnn backends`")
    return [reg.get(n) for n in names]   # unknown/unavailable: one clear line from the registry


def _pick_kinds(spec: str | None) -> list[str]:
    kinds = [s.strip() for s in spec.split(",") if s.strip()] if spec else list(KINDS)
    bad = [k for k in kinds if k not in KINDS]
    if bad or not kinds:
        raise GenrecnnError(f"unknown layer kind(s) {', '.join(bad) or '(none)'} in --layers; "
                            f"use some of {', '.join(KINDS)}")
    return kinds


def _write_csv(path: Path, rows: list[dict]) -> None:
    fields: list[str] = []
    for r in rows:
        fields.extend(k for k in r if k not in fields)
    with atomic_path(path, suffix=".csv") as tmp:
        with open(tmp, "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=fields)
            w.writeheader()
            w.writerows(rows)


def _make_out(out: Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise GenrecnnError(f"cannot create output folder {out}: {exc.strerror or exc}; "
                            f"choose another with --out") from None


def _save(fig, path: Path) -> None:
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=110)


def _plot_sweep(rows: list[dict], out: Path) -> list[Path]:
    """One figure per layer kind: time against size, log-log, forward and backward."""
    from matplotlib.figure import Figure
    paths = []
    for kind in dict.fromkeys(r["kind"] for r in rows):
        fig = Figure(figsize=(10, 4))
        for ax, phase in zip(fig.subplots(1, 2), ("forward", "backward")):
            lines = defaultdict(list)
            for r in rows:
                if r["kind"] == kind and r["phase"] == phase:
                    lines[r["backend"]].append((r["elements"], r["median_s"]))
            for be, pts in lines.items():
                xs, ys = zip(*sorted(pts))
                ax.loglog(xs, ys, marker="o", label=be)
            ax.set(title=f"{kind} {phase}", xlabel="input elements", ylabel="median time (s)")
            ax.grid(True, which="both", alpha=0.3)
            ax.legend()
        fig.tight_layout()
        paths.append(out / f"layers_{kind}.png")
        _save(fig, paths[-1])
    return paths


def _plot_arch(rows: list[dict], out: Path) -> Path:
    """Per-layer bars (log scale), one bar per backend, forward and backward."""
    from matplotlib.figure import Figure
    layers = list(dict.fromkeys(r["layer"] for r in rows))
    backends = list(dict.fromkeys(r["backend"] for r in rows))
    fig = Figure(figsize=(max(8, len(layers) * 0.9), 7))
    width = 0.8 / max(1, len(backends))
    for ax, phase in zip(fig.subplots(2, 1), ("forward", "backward")):
        t = {(r["layer"], r["backend"]): r["median_s"] for r in rows if r["phase"] == phase}
        for j, be in enumerate(backends):
            xs = [i + j * width for i, name in enumerate(layers) if (name, be) in t]
            ys = [t[(name, be)] for name in layers if (name, be) in t]
            ax.bar(xs, ys, width=width, label=be)
        ax.set_xticks([i + 0.4 - width / 2 for i in range(len(layers))], layers)
        ax.set(yscale="log", title=phase, ylabel="median time (s)")
        ax.grid(True, axis="y", which="both", alpha=0.3)
        ax.legend()
    fig.tight_layout()
    path = out / "arch_layers.png"
    _save(fig, path)
    return path


def _plot_transfers(rows: list[dict], out: Path) -> Path:
    from matplotlib.figure import Figure
    fig = Figure(figsize=(6, 4))
    ax = fig.subplots()
    lines = defaultdict(list)
    for r in rows:
        lines[r["pair"]].append((r["elements"], r["median_s"]))
    for pair, pts in lines.items():
        xs, ys = zip(*sorted(pts))
        ax.loglog(xs, ys, marker="o", label=pair.replace(">", " -> "))
    ax.set(title="transfer cost", xlabel="array elements", ylabel="median time (s)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize="small")
    fig.tight_layout()
    path = out / "transfers.png"
    _save(fig, path)
    return path


def _ms(s: float) -> str:
    return f"{s * 1e3:.3f}" if s < 0.01 else f"{s * 1e3:.1f}"


def _table_layers(rows: list[dict], key: str) -> list[str]:
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


def _table_transfers(rows: list[dict]) -> list[str]:
    lines = [f"{'transfer':<22}{'shape':<20}{'median ms':>12}{'GB/s':>9}"]
    for r in rows:
        nbytes = r["elements"] * r.get("itemsize", 4)
        gbs = nbytes / r["median_s"] / 1e9 if r["median_s"] > 0 else float("inf")
        lines.append(f"{r['pair'].replace('>', ' -> '):<22}{r['shape']:<20}"
                     f"{_ms(r['median_s']):>12}{gbs:>9.2f}")
    return lines


@click.command()
@click.option("--backends", "backends_spec", metavar="A,B",
              help="Backends to time (default: every available one).")
@click.option("--arch", metavar="NAME|FILE",
              help="Time this architecture's layers at their real shapes instead of a sweep.")
@click.option("--batch-size", type=click.IntRange(1), default=32, show_default=True,
              help="Batch size for --arch and --compare-auto.")
@click.option("--mels", type=click.IntRange(1), default=128, show_default=True,
              help="Input mel bands for --arch.")
@click.option("--frames", type=click.IntRange(1), default=1292, show_default=True,
              help="Input frames for --arch (1292 = a 30 s GTZAN clip).")
@click.option("--sizes", default=DEFAULT_SIZES, show_default=True, metavar="LO:HI[:STEP]",
              help="Sweep input sizes 2^LO..2^HI elements (e.g. 5:24), or a comma list.")
@click.option("--layers", "layers_spec", metavar="K,K",
              help=f"Layer kinds to time (default all: {','.join(KINDS)}).")
@click.option("--reps", type=click.IntRange(1), default=bench.REPS, show_default=True,
              help="Timed repetitions per measurement (after one warm-up).")
@click.option("--budget", type=click.FloatRange(0), default=bench.BUDGET, show_default=True,
              help="Stop repeating a measurement after this many seconds.")
@click.option("--max-call", type=click.FloatRange(0), default=2.0, show_default=True,
              help="Sweep: skip larger sizes on a backend once one call takes longer (s).")
@click.option("--dtype", type=click.Choice(DTYPES), default="float32", show_default=True)
@click.option("--optimizer", type=click.Choice(sorted(bench.UPDATE_OPS)), default="adam",
              show_default=True, help="Update timed with --arch and --compare-auto.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default="runs/bench",
              show_default=True, help="Folder for the CSV files and PNG plots.")
@click.option("--compare-auto", is_flag=True,
              help="Time full training steps under --backend auto and every single backend "
                   "(with --arch, default small).")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
def bench_cmd(backends_spec, arch, batch_size, mels, frames, sizes, layers_spec, reps, budget,
              max_call, dtype, optimizer, out_dir, compare_auto, as_json):
    """Time each layer's forward and backward per backend, and transfers between them."""
    from tqdm import tqdm

    backends = _pick_backends(backends_spec)
    kinds = _pick_kinds(layers_spec)
    out = Path(out_dir)
    say = (lambda *a, **k: None) if as_json else click.echo
    if compare_auto:
        from genrecnn.engine.autoplace import compare_with_single
        from genrecnn.engine.architectures import build_network, load_architecture
        cfg = load_architecture(arch or "small")
        result = compare_with_single(
            lambda: build_network(cfg, (mels, frames), 10, dtype=dtype), batch_size,
            backends=[b.name for b in backends], optimizer=optimizer, reps=reps, echo=say)
        _make_out(out)
        _write_csv(out / "compare_auto.csv", result["rows"])
        if as_json:
            click.echo(json.dumps(result, indent=2))
        return

    network = None
    if arch:
        from genrecnn.engine.architectures import build_network, load_architecture
        network = build_network(load_architecture(arch), (mels, frames), 10, dtype=dtype)
        size_list = []
    else:
        size_list = bench.parse_sizes(sizes)
    limits = bench.SweepLimits(max_call_s=max_call)
    bar = tqdm(desc="bench", unit="meas", leave=False, disable=None)

    def progress(what: str) -> None:
        bar.set_postfix_str(what, refresh=False)
        bar.update(1)

    try:
        if network is not None:
            say(f"bench {arch}: input {mels}x{frames}, batch {batch_size}, {dtype}, "
                f"{optimizer} update, backends {', '.join(b.name for b in backends)}")
            layer_rows = bench.arch_layers(network, backends, batch_size, optimizer=optimizer,
                                           kinds=kinds, reps=reps, budget=budget,
                                           progress=progress)
            xfer_rows = bench.arch_transfers(network, backends, batch_size, reps=reps,
                                             budget=budget, progress=progress)
        else:
            exps = [int(np.log2(s)) for s in size_list]
            say(f"bench sweep: 2^{exps[0]}..2^{exps[-1]} input elements ({len(exps)} sizes), "
                f"{dtype}, layers {', '.join(kinds)}, "
                f"backends {', '.join(b.name for b in backends)}")
            layer_rows = bench.sweep_layers(backends, kinds, size_list, dtype, reps=reps,
                                            budget=budget, limits=limits, progress=progress)
            xfer_rows = bench.sweep_transfers(backends, size_list, dtype, reps=reps,
                                              budget=budget, limits=limits, progress=progress)
    finally:
        bar.close()
    itemsize = 4 if dtype == "float32" else 8
    for r in xfer_rows:
        r["itemsize"] = itemsize

    _make_out(out)
    files = [out / "layers.csv", out / "transfers.csv"]
    _write_csv(files[0], layer_rows)
    _write_csv(files[1], xfer_rows)
    if layer_rows:
        files += [_plot_arch(layer_rows, out)] if network is not None else _plot_sweep(layer_rows,
                                                                                       out)
    if xfer_rows and network is None:
        files.append(_plot_transfers(xfer_rows, out))
    if as_json:
        click.echo(json.dumps({"layers": layer_rows, "transfers": xfer_rows,
                               "skipped": limits.skipped, "files": [str(f) for f in files]},
                              indent=2))
        return
    for line in _table_layers(layer_rows, "layer" if network is not None else "elements"):
        say(line)
    if xfer_rows:
        say("")
        for line in _table_transfers(xfer_rows):
            say(line)
    for s in limits.skipped:
        say(f"skipped: {s}")
    say(f"wrote {', '.join(str(f) for f in files)}")
