"""Errors a user can cause. Each message is one line naming the problem and what to do.

The CLI turns any ``GenrecnnError`` into that line and a non-zero exit; anything
else escaping is a bug in genrecnn.
"""


class GenrecnnError(Exception):
    """A problem the user can fix; ``str(err)`` is the whole message."""


class BackendError(GenrecnnError):
    """Unknown, unavailable or misbehaving backend."""


class UnsupportedOp(BackendError):
    """The backend does not implement this op of the contract."""


class ShapeError(GenrecnnError):
    """Arrays or layers whose shapes do not fit together."""


class PlacementError(GenrecnnError):
    """A placement spec that names unknown backends, kinds or layers."""


class ModelFileError(GenrecnnError):
    """A model file that is missing, not ours, truncated or incompatible."""


class DataError(GenrecnnError):
    """Audio, spectrograms or datasets that cannot be used."""


class OutputError(GenrecnnError, OSError):
    """An output file that cannot be written (an OSError too, for callers that catch those)."""
