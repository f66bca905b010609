"""The contract's execution ops: capturing a whole training step as a CUDA graph that is
replayed instead of launched op by op.

A step of a small network is bound by launches, not arithmetic; a graph
replays all of its kernels in one launch. Capture works per device: every
backend of the step joins one stream, the backend that owns that stream
records it, and all of them allocate from private pools while recording, so
the addresses the graph writes stay theirs. Conventions in
:mod:`genrecnn.engine.ops`.
"""
from __future__ import annotations


class GraphOps:
    """new_stream, use_stream, capture_begin, capture_end, graph_launch."""

    # -- capturing a step --------------------------------------------------------------

    def new_stream(self) -> int:
        """Create a CUDA stream of this backend's own, issue all further work on it and
        return its handle (an int)."""
        raise self._unsupported("new_stream")

    def use_stream(self, handle: int | None) -> bool:
        """Issue all further work on the CUDA stream ``handle`` (made by another
        backend's :meth:`new_stream`; None: back to this backend's default). False
        when this backend cannot launch on a stream it did not create."""
        raise self._unsupported("use_stream")

    def capture_begin(self, lead: bool) -> None:
        """Allocate from a private pool from now on; if ``lead``, also begin capturing
        the current stream into a graph (relaxed mode: allocations may still grow
        the pool). Every backend of the step calls this, the stream's owner last."""
        raise self._unsupported("capture_begin")

    def capture_end(self, lead: bool):
        """Return to the normal pool; if ``lead``, end the capture first. Returns an
        object to keep alive as long as the graph is used (the lead's holds the
        instantiated graph; the others', their private pools)."""
        raise self._unsupported("capture_end")

    def graph_launch(self, graph) -> None:
        """Replay the lead's captured graph on the current stream (queued, no wait)."""
        raise self._unsupported("graph_launch")
