"""The kind of input a model was trained on, whose value scale its answers depend on.

Audio becomes a log-mel in [0, 1] relative to each clip's loudest bin; a PNG is
whatever intensity / 255 its maker drew; a .npy holds values as stored. A model
trained on one kind answers confidently and wrongly on another (an image-trained
model called every real song "disco"), so the kind is saved with the model and
`predict` / `filters` refuse a file of another kind.
"""
from __future__ import annotations

from pathlib import Path

from genrecnn.errors import DataError
from genrecnn.music.features import AUDIO_EXTENSIONS, IMAGE_EXTENSIONS, SUPPORTED_EXTENSIONS

# kind -> its value scale, in words
INPUT_KINDS = {
    "audio": "audio (log-mel, 0..1 from 80 dB below the clip's peak)",
    "png": "PNG spectrogram images (intensity / 255)",
    "npy": ".npy arrays (values as stored)",
}


def kind_of(path) -> str | None:
    """"audio", "png" or "npy", from the file's extension (None: not a clip file)."""
    ext = Path(path).suffix.lower()
    if ext not in SUPPORTED_EXTENSIONS:
        return None
    if ext in AUDIO_EXTENSIONS:
        return "audio"
    return "png" if ext in IMAGE_EXTENSIONS else "npy"


def dataset_kind(data, clip_ids) -> str:
    """The one kind of the clips ``clip_ids`` ("genre/stem") under ``data``; the synthetic
    default (``data`` None) is audio. A folder mixing kinds is refused: the network would
    learn the scale, not the genre."""
    if data is None:
        return "audio"
    wanted = set(clip_ids)
    found: dict[str, str] = {}
    for genre in sorted({cid.split("/", 1)[0] for cid in wanted}):
        for path in sorted((Path(data) / genre).iterdir()):
            cid = f"{genre}/{path.stem}"
            if cid in wanted and kind_of(path) is not None:
                found.setdefault(kind_of(path), cid)
    if len(found) > 1:
        examples = ", ".join(f"{cid} ({kind})" for kind, cid in sorted(found.items()))
        raise DataError(f"{data} mixes input kinds ({examples}) whose value scales differ; "
                        f"train on one kind (convert the others, or keep them in another "
                        f"folder)")
    return next(iter(found), "audio")


def check_input_kind(model_kind: str | None, path) -> None:
    """Refuse a clip file whose kind differs from the model's (``model_kind`` None: an
    older model, which recorded none). Call it once the file has been read, so a damaged
    file is reported as damaged."""
    kind = kind_of(path)
    if model_kind is None or kind is None or kind == model_kind:
        return
    raise DataError(f"{path}: is {INPUT_KINDS[kind]}, but the model was trained on "
                    f"{INPUT_KINDS[model_kind]}; the value scales differ, so its answer would "
                    f"mean nothing: pass {model_kind} files or train a model on "
                    f"{kind} inputs")
