"""Capturing a training step as one CUDA graph across the backends of a placement.

Every backend of the step joins one stream: the first that can own it makes
it (a backend that cannot launch on foreign streams must own it), the others
join. The body is captured once, with every backend allocating from a private
pool, and then replayed: one launch per step instead of hundreds. Anything
the body reads that changes from step to step must live in device arrays
written before each replay (``write``), never in Python values.
"""
from __future__ import annotations

from genrecnn.errors import BackendError


def distinct(backends) -> list:
    """Backends in first-seen order, each once (a placement names most of them often)."""
    seen: dict[int, object] = {}
    for be in backends:
        seen.setdefault(id(be), be)
    return list(seen.values())


def graph_obstacle(backends) -> str:
    """Why these backends cannot share a captured step ("" when they can)."""
    for be in backends:
        if be.device != "cuda":
            return f"backend {be.name!r} runs on the {be.device}, not a CUDA device"
        for group in ("graph", "update_many", "batch", "train_loss"):
            if not be.supports(group):
                return f"backend {be.name!r} does not implement {group}"
    return ""


class SharedStream:
    """The backends of a step issuing their work on one stream (until :meth:`close`)."""

    def __init__(self, backends):
        self.backends = distinct(backends)
        why = graph_obstacle(self.backends)
        if why:
            raise BackendError(f"cannot capture the training step as a CUDA graph: {why}")
        for owner in self.backends:
            handle = owner.new_stream()
            others = [b for b in self.backends if b is not owner]
            if all(b.use_stream(handle) for b in others):
                self.owner, self.handle = owner, handle
                return
            for b in self.backends:
                b.use_stream(None)
        raise BackendError("the backends of this placement cannot share a CUDA stream; "
                           "place the network on one CUDA backend or train without graphs "
                           "(--no-graphs)")

    def capture(self, body):
        """Record ``body()`` (not run) into a graph; returns what replays it."""
        others = [b for b in self.backends if b is not self.owner]
        for b in others:
            b.capture_begin(False)
        self.owner.capture_begin(True)
        try:
            body()
        finally:
            keep = [self.owner.capture_end(True)] + [b.capture_end(False) for b in others]
        return Captured(self.owner, keep)

    def close(self) -> None:
        """Wait for the stream, then every backend back on its default stream, the
        stream's owner last (the others must let go of its stream before it is gone)."""
        self.owner.synchronize()
        for b in self.backends:
            if b is not self.owner:
                b.use_stream(None)
        self.owner.use_stream(None)


class Captured:
    """A recorded step: :meth:`replay` queues it again."""

    def __init__(self, owner, keep: list):
        self.owner, self.keep = owner, keep

    def replay(self) -> None:
        self.owner.graph_launch(self.keep[0])
