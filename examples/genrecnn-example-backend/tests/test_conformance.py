"""The example backend tests itself as any third-party backend would: the
conformance suite shipped in genrecnn, one pytest item per case."""
from genrecnn.conformance import parametrize_backend_checks


@parametrize_backend_checks("example")
def test_example_backend(genrecnn_check):
    genrecnn_check()
