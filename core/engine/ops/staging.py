"""The contract's staging ops: batches streamed from host memory to the device while the
device computes, for training sets too large to keep there.

A training step reads its batch from a device array (a "slot"); the host fills a
staging buffer from :meth:`~StagingOps.pinned_empty` and :meth:`~StagingOps.upload_async`
copies it into the slot on a side stream, so the copy of step i + 1 overlaps the
compute of step i. Three orderings make that safe, and each op states its part:

* the copy starts after the compute queued before it (the last step that read the slot
  has finished with it): :meth:`~StagingOps.upload_async`;
* compute queued later sees the copied data: :meth:`~StagingOps.await_upload`;
* the host may rewrite the staging buffer once the copy has read it:
  :meth:`~StagingOps.upload_finished`.

The "compute stream" is the stream this backend issues its other ops on at the time
of the call (its default stream, or the stream a captured step shares, see
:mod:`.graphs`). Uploads are never captured into a graph: they are called between
replays. On a CPU backend everything is synchronous and the tokens are None.
Conventions in :mod:`genrecnn.engine.ops`.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Upload:
    """A CUDA backend's token for one upload: the event recorded after the copy, and what
    must outlive the copy (the event it waited for, the host array it reads)."""

    done: object
    queued: object
    host: object


class StagingOps:
    """pinned_empty, upload_async, await_upload, upload_finished."""

    def pinned_empty(self, shape: tuple[int, ...], dtype: str):
        """A writable, C-contiguous NumPy array of ``shape`` and ``dtype`` (values
        undefined) that :meth:`upload_async` copies from fastest: page-locked host
        memory on a CUDA backend, a plain ``np.empty`` on a CPU one. It stays valid as
        long as the array (or a view of it) is referenced."""
        raise self._unsupported("pinned_empty")

    def upload_async(self, host, dst):
        """Start copying the NumPy array ``host`` into the existing device array ``dst``
        (same shape and dtype, both C-contiguous; ``host`` from :meth:`pinned_empty` for
        the copy to overlap compute; any other array is allowed but may block the host)
        and return an opaque token at once.

        The copy runs on a side stream and starts only after all work already queued
        on the compute stream (so a step queued before this call still reads the old
        ``dst``). Until :meth:`await_upload` is called with the token, compute queued
        later may see ``dst`` in any state; until :meth:`upload_finished` returns, the
        host must not write ``host`` (nor free it: the token keeps it alive). Neither
        argument is otherwise changed. Several uploads may be in flight at once, to
        different ``dst`` arrays.
        """
        raise self._unsupported("upload_async")

    def await_upload(self, token) -> None:
        """Make the compute stream wait for the upload of ``token``: every op queued
        after this call sees the copied ``dst``. Does not block the host (it may, on a
        backend that cannot order its streams otherwise). Returns None."""
        raise self._unsupported("await_upload")

    def upload_finished(self, token) -> None:
        """Block the host until the upload of ``token`` is complete: it has read all of
        its ``host`` array, which may then be rewritten without changing ``dst``, and
        written ``dst``, which may then be freed. May be called any number of times,
        before or after :meth:`await_upload`. Returns None."""
        raise self._unsupported("upload_finished")
