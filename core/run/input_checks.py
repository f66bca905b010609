"""Options checked against the data once it is loaded (their range depends on the clips)."""
from __future__ import annotations

from genrecnn.errors import DataError


def check_crop(crop: int | None, frames: int) -> None:
    """Refuse an explicit ``--crop`` longer than the items: it would train on whole items
    while the run's record claims crops."""
    if crop is not None and crop > frames:
        raise DataError(f"--crop {crop} is longer than the items ({frames} frames); give "
                        f"--crop {frames} or less, or drop --crop to train on whole items")
