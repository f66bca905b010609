"""Every JSON genrecnn prints or writes is strict: NaN and infinities (which Python's json
writes as bare ``NaN``/``Infinity`` unless told not to) come out as null, so ``jq`` and
other strict readers accept it. All of it goes through :func:`genrecnn.fsutil.json_text`."""
from __future__ import annotations

import json

import numpy as np
import pytest

from badinput import run_cli
from genrecnn.conformance.runner import FAIL, CaseResult, Report, Row
from genrecnn.fsutil import json_text

NAN, INF = float("nan"), float("inf")


def test_the_strict_reader_refuses_what_python_writes_by_default(strict_json):
    with pytest.raises(ValueError, match="NaN"):
        strict_json(json.dumps({"loss": NAN}))
    with pytest.raises(ValueError, match="Infinity"):
        strict_json(json.dumps([-INF]))
    assert strict_json('{"loss": null, "n": [1, 2.5]}') == {"loss": None, "n": [1, 2.5]}


def test_json_text_writes_non_finite_numbers_as_null(strict_json):
    value = {"a": NAN, "b": [INF, -INF, 1.5, (2, np.float32(NAN))], "c": np.float32(0.25),
             "d": np.int64(7), "e": True, "f": None, "g": "NaN"}
    assert strict_json(json_text(value)) == {"a": None, "b": [None, None, 1.5, [2, None]],
                                             "c": 0.25, "d": 7, "e": True, "f": None,
                                             "g": "NaN"}
    assert strict_json(json_text(value, indent=None)) == strict_json(json_text(value))


def test_bench_json_is_strict_when_a_timing_is_not_finite(monkeypatch, tmp_path, capsys,
                                                          strict_json):
    """An empty timing (median 0) gives an infinite rate: it must print as null."""
    from genrecnn.run import bench_job

    def fake_run_bench(*args, **kwargs):
        return {"layers": [{"layer": "conv1", "median_s": NAN}],
                "transfers": [{"pair": "host>numpy", "gb_per_s": INF}],
                "skipped": [], "files": [], "key": "layer"}
    monkeypatch.setattr(bench_job, "run_bench", fake_run_bench)
    code, out, err = run_cli(["bench", "--backends", "numpy", "--out", tmp_path, "--json"],
                             capsys)
    assert code == 0, err
    data = strict_json(out)
    assert data["layers"][0]["median_s"] is None and data["transfers"][0]["gb_per_s"] is None


def test_bench_compare_auto_json_is_strict(monkeypatch, tmp_path, capsys, strict_json):
    from genrecnn.run import bench_job
    monkeypatch.setattr(bench_job, "compare_auto",
                        lambda *a, **k: {"rows": [], "ratio": NAN, "verdict": "ok"})
    code, out, err = run_cli(["bench", "--compare-auto", "--backends", "numpy",
                              "--out", tmp_path, "--json"], capsys)
    assert code == 0, err
    assert strict_json(out) == {"rows": [], "ratio": None, "verdict": "ok"}


def test_backends_json_is_strict(capsys, strict_json):
    code, out, err = run_cli(["backends", "--json"], capsys)
    assert code == 0, err
    listed = {b["name"]: b for b in strict_json(out)}
    assert listed["numpy"]["available"] is True
    assert "pycuda" in listed and isinstance(listed["pycuda"]["reason"], str)


def test_conformance_report_json_is_strict(strict_json):
    """A failing check may measure a NaN error; the report still parses."""
    report = Report("x", rows=[Row("conv1d", "float32", FAIL, checks=1, failed=1,
                                   largest_error=NAN)],
                    cases=[CaseResult("c", "conv1d", "float32", "forward", "y", FAIL,
                                      error=INF)])
    data = strict_json(report.to_json())
    assert data["rows"][0]["largest_error"] is None and data["failures"][0]["error"] is None
    assert data["ok"] is False


def test_conformance_cli_json_is_strict(capsys, strict_json):
    code, out, err = run_cli(["conformance", "--backend", "numpy", "--op", "softmax",
                              "--dtype", "float32", "--json"], capsys)
    assert code == 0, err
    data = strict_json(out)
    assert data["backend"] == "numpy" and data["ok"] is True and data["rows"]


def test_train_predict_and_features_json_are_strict(trained, npy_data, tmp_path, capsys,
                                                    strict_json):
    metrics = strict_json((trained / "metrics.json").read_text())
    assert metrics["class_names"] == ["high", "low"]
    code, out, err = run_cli(["predict", trained / "model.safetensors",
                              npy_data / "low" / "low.00000.npy", "--json"], capsys)
    assert code == 0, err
    (result,) = strict_json(out)
    assert result["top"][0]["genre"] == "low"
    code, out, err = run_cli(["features", npy_data, "--cache-dir", tmp_path / "c", "--json"],
                             capsys)
    assert code == 0, err
    summary = strict_json(out)
    assert summary["clips"] == 12 and summary["genres"] == ["high", "low"], summary
