"""Freshly initialised genrecnn models of the shipped architectures, with random
batch-norm statistics and band normalisation, saved as model files: what the ONNX
round-trip tests export (no training needed to exercise every layer)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from genrecnn.engine.architectures import build_network, load_architecture
from genrecnn.music.features import FeatureParams
from genrecnn.music.normalize import BandNormalizer
from genrecnn.run.model_io import save_model

N_MELS, FRAMES = 128, 128
NAMES = ["blues", "jazz", "metal"]
OUTPUT_SCALE = 0.02     # small last-layer weights: probabilities far from 0 and 1 to compare


def dtype_scale(array: np.ndarray, scale: float):
    return np.asarray(scale, dtype=array.dtype)


def random_model(arch: str, path: Path, seed: int = 0, dtype: str = "float32") -> Path:
    """``arch`` with He/uniform weights, random biases, batch-norm scale, shift and running
    statistics, and a random per-band normaliser, saved at ``path``."""
    rng = np.random.default_rng(seed)
    net = build_network(load_architecture(arch), (N_MELS, FRAMES), len(NAMES), dtype=dtype,
                        seed=seed)
    params = {}
    for key, value in net.host_params().items():
        if key.endswith("running_var") or key.endswith("/gamma"):
            params[key] = rng.uniform(0.5, 2.0, value.shape).astype(dtype)
        elif key.endswith("running_mean") or key.endswith("/beta") or key.endswith("/b"):
            params[key] = rng.normal(0, 0.2, value.shape).astype(dtype)
        else:
            params[key] = value
    last = [k for k in params if k.endswith("/w")][-1]
    params[last] = params[last] * dtype_scale(params[last], OUTPUT_SCALE)
    net.load_host_params(params)
    norm = BandNormalizer(rng.uniform(0.3, 0.7, N_MELS), rng.uniform(0.1, 0.3, N_MELS))
    meta = {"class_names": NAMES, "feature_params": FeatureParams().as_dict(), "norm": "band",
            "frames": FRAMES, "windows": None}
    save_model(path, net, meta=meta, extra_arrays={f"norm/{k}": v for k, v in
                                                    norm.to_arrays().items()})
    return path


def log_mel_batch(n: int, seed: int = 1, frames: int = FRAMES) -> np.ndarray:
    """Random features on genrecnn's log-mel scale ([0, 1]), [n, mel bands, frames]."""
    x = np.random.default_rng(seed).normal(0.5, 0.2, (n, N_MELS, frames))
    return np.clip(x, 0, 1).astype(np.float32)
