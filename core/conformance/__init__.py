"""The conformance suite: the contract every backend, built-in or third-party, must pass.

Three ways to run it:

* ``genrecnn conformance --backend NAME`` prints a table, exit 0 only if all passes;
* ``pytest --pyargs genrecnn.conformance --genrecnn-backend NAME`` gives one pytest
  item per (op group, dtype, check case);
* :func:`parametrize_backend_checks` puts the same items into your own test suite.

Results are compared with the float64 :mod:`genrecnn.conformance.reference`; products at
tf32 or bf16 with it on operands rounded the same way (:mod:`genrecnn.engine.ops.precision`).
"""
from .cases import Case, cases_for
from .checks import CheckFailed, TOLERANCE
from .runner import FAIL, PASS, UNSUPPORTED, Report, Row, run_case, run_conformance

__all__ = ["Case", "CheckFailed", "FAIL", "PASS", "Report", "Row", "TOLERANCE", "UNSUPPORTED",
           "cases_for", "parametrize_backend_checks", "run_case", "run_conformance"]


def parametrize_backend_checks(name, dtypes=None, ops=None, precisions=None):
    """``@parametrize_backend_checks("mybackend")`` on ``def test_x(genrecnn_check):
    genrecnn_check()`` makes one test per case (see :mod:`.pytest_plugin`)."""
    from .pytest_plugin import parametrize_backend_checks as _p
    return _p(name, dtypes=dtypes, ops=ops, precisions=precisions)
