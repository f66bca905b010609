"""Where the shared real-music data lies: ``$GENRECNN_SHARED_DATA``, else the
``shared/data`` folder beside the checkout (``../shared/data``), else
``/work/shared/data``. Tests that need it skip with the path when it is absent."""
import os
from pathlib import Path

_CANDIDATES = [Path(os.environ["GENRECNN_SHARED_DATA"])] if "GENRECNN_SHARED_DATA" in os.environ \
    else [Path(__file__).resolve().parents[2] / "shared" / "data", Path("/work/shared/data")]
SHARED_DATA = next((p for p in _CANDIDATES if p.is_dir()), _CANDIDATES[0])
SAMPLE = SHARED_DATA / "gtzan-sample"
SPLITS = SHARED_DATA / "gtzan-fault-filtered"
