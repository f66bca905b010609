"""The conformance suite as pytest items, shipped in the package for backend authors.

Run: ``pytest --pyargs genrecnn.conformance --genrecnn-backend NAME``; the
plugin in :mod:`genrecnn.conformance.pytest_plugin` makes one item of this
test per (op group, dtype, check case).
"""


def test_conformance(genrecnn_check):
    genrecnn_check()
