"""Measured plans cached per machine, so a second run decides instantly.

Keyed by machine (hostname and GPU), architecture, dtype, precision (where not fp32),
batch size, optimiser and the set of available backends; stored in
``$GENRECNN_CACHE/autoplace.json`` (or ``~/.cache/genrecnn/autoplace.json``).
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import subprocess
from functools import lru_cache
from pathlib import Path

from genrecnn.engine.autoplace.report import PlanReport
from genrecnn.fsutil import atomic_write_text, json_text

CACHE_VERSION = 1


def cache_path() -> Path:
    """``$GENRECNN_CACHE/autoplace.json``, else ``~/.cache/genrecnn/autoplace.json``."""
    root = os.environ.get("GENRECNN_CACHE")
    base = Path(root) if root else Path.home() / ".cache" / "genrecnn"
    return base / "autoplace.json"


@lru_cache(maxsize=1)
def machine_id() -> str:
    """Hostname plus the GPU names nvidia-smi reports (if any): plans are per machine."""
    gpus = ""
    smi = shutil.which("nvidia-smi")
    if smi:
        try:
            out = subprocess.run([smi, "--query-gpu=name", "--format=csv,noheader"],
                                 capture_output=True, text=True, timeout=10)
            gpus = ";".join(s.strip() for s in out.stdout.splitlines() if s.strip())
        except (OSError, subprocess.SubprocessError):
            gpus = "nvidia-smi failed"
    return f"{socket.gethostname()}|{gpus or 'no-gpu'}"


def plan_key(network, batch_size: int, optimizer: str | None, backends: list[str],
             streamed: bool = False) -> str:
    arch = json.dumps({"layers": network.config(), "input": list(network.input_shape)},
                      sort_keys=True)
    digest = hashlib.sha1(arch.encode()).hexdigest()[:12]
    return (f"{machine_id()}|arch {digest}|{network.dtype}|batch {batch_size}|"
            f"opt {optimizer or '-'}|{','.join(sorted(backends))}"
            + ("|streamed" if streamed else "")
            + (f"|{network.precision}" if network.precision != "fp32" else ""))


def read_cache(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict) or data.get("version") != CACHE_VERSION:
        return {}
    return data.get("entries", {}) if isinstance(data.get("entries"), dict) else {}


def write_cache(path: Path, key: str, report: PlanReport) -> None:
    entries = read_cache(path)
    entries[key] = report.as_dict()
    atomic_write_text(path, json_text({"version": CACHE_VERSION, "entries": entries}, indent=1))
