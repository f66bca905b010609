"""The data a run names: a feature store, a folder of genre folders, or the built-in
synthetic genres; loaded once per rank of an MPI run."""
from __future__ import annotations

from genrecnn.errors import DataError
from genrecnn.music.loading import load_data
from genrecnn.music.store import is_store, open_store
from genrecnn.run.options import RunOptions
from genrecnn.run.store_items import StoreDataset
from genrecnn.world import world


def load_run_data(options: RunOptions, progress: bool, shapes_only: bool = False):
    """A :class:`~genrecnn.music.dataset.Dataset` in memory, or a
    :class:`~genrecnn.run.store_items.StoreDataset` whose clips stay on disk.

    In an MPI run every rank loads the data; for a folder, rank 0 extracts first (and
    fills the feature cache) while the others wait, then they read from the cache.
    """
    if options.data is not None and is_store(options.data):
        for flag, value in (("--frames", options.frames), ("--windows", options.windows)):
            if value:
                raise DataError(f"{flag} applies to a folder of clips; a feature store keeps "
                                f"every clip at its own length (use --crop to set the "
                                f"network's input length)")
        return StoreDataset(open_store(options.data, options.genres))
    w = world()
    if w.size > 1 and not w.is_root:
        w.barrier()
    try:
        return load_data(options.data, options.genres, options.frames, options.windows,
                         options.strict, progress=progress and w.is_root,
                         shapes_only=shapes_only)
    finally:
        if w.size > 1 and w.is_root:
            w.barrier()
