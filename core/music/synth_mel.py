"""The synthetic genres drawn straight in the log-mel domain: thousands of clips a second.

Synthesising audio and running the STFT (``synthetic.py``) takes ~0.3 s per 30-s
clip; a 50,000-clip corpus would take hours. Here each class recipe paints the
same kinds of cues directly onto the [n_mels, frames] power grid: onsets on a
tempo grid or at random (an impulse train through an exponential decay along
time), harmonic or bell partials as narrow bumps at their frequencies' mel bands,
noise bands, tremolo; then, as in the audio path, often a quiet element of
another class, background noise at a random level and spectral speckle, and the
same log scaling to [0, 1] (``top_db`` below the loudest bin). Every clip has its
own random stream, so a clip depends only on (seed, class, number).
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy.signal import lfilter

from genrecnn.music.features import FeatureParams
from genrecnn.music.synthetic import PENTATONIC

BELL = ((1.0, 1.0), (2.0, 0.6), (2.76, 0.5), (5.40, 0.3), (8.93, 0.2))
MEL_CLASSES = ("pulse", "drone", "chime", "swing")
# the share of mixed clips whose second class is about as loud as their own: these keep
# any classifier from being perfect, however long the clips
STRONG_MIX = 0.3


def _hz(midi):
    return 440.0 * 2.0 ** ((np.asarray(midi, dtype=np.float64) - 69.0) / 12.0)


@lru_cache(maxsize=8)
def _band_centres(n_mels: int, fmax: float) -> np.ndarray:
    import librosa

    return librosa.mel_frequencies(n_mels + 2, fmin=0.0, fmax=fmax)[1:-1]


class _Grid:
    """One clip's [n_mels, frames] power grid and the tools recipes paint it with."""

    def __init__(self, rng: np.random.Generator, params: FeatureParams, frames: int):
        self.rng, self.params, self.frames = rng, params, frames
        self.fps = params.sr / params.hop_length
        self.centres = _band_centres(params.n_mels, params.fmax)
        self.bins = np.arange(params.n_mels, dtype=np.float64)[:, None]
        self.power = np.zeros((params.n_mels, frames), np.float32)

    def bin_of(self, hz) -> np.ndarray:
        """Fractional mel band of each frequency (NaN above fmax: not drawn)."""
        hz = np.asarray(hz, dtype=np.float64)
        b = np.interp(hz, self.centres, np.arange(len(self.centres)))
        return np.where(hz < self.centres[-1], b, np.nan)

    def partials(self, f0, ratios_amps, width: float = 0.6) -> np.ndarray:
        """[n_mels, len(f0)] band profiles of tones at ``f0`` with (ratio, amplitude) partials."""
        f0 = np.atleast_1d(f0)
        out = np.zeros((len(self.bins), len(f0)))
        for ratio, amp in ratios_amps:
            b = self.bin_of(f0 * ratio)
            ok = ~np.isnan(b)
            out[:, ok] += amp ** 2 * np.exp(-0.5 * ((self.bins - b[ok]) / width) ** 2)
        return out

    def band(self, lo: float, hi: float) -> np.ndarray:
        """[n_mels] flat profile between ``lo`` and ``hi`` Hz with soft edges."""
        b_lo, b_hi = np.nan_to_num(self.bin_of([lo, hi]), nan=len(self.centres) - 1)
        m = self.bins[:, 0]
        return 1.0 / (1 + np.exp(-(m - b_lo) * 2)) / (1 + np.exp((m - b_hi) * 2))

    def onsets(self, times_s, gains, decay_s: float, row=None, rows: int = 1) -> np.ndarray:
        """[rows, frames] envelopes: an impulse of ``gains`` at each onset (into row
        ``row[k]`` of ``rows``), then an exponential decay of ``decay_s``."""
        idx = np.asarray(np.asarray(times_s) * self.fps, dtype=np.int64)
        which = np.zeros_like(idx) if row is None else np.asarray(row, dtype=np.int64)
        gains = np.broadcast_to(np.asarray(gains, dtype=np.float64), idx.shape)
        ok = (idx >= 0) & (idx < self.frames)
        imp = np.zeros((rows, self.frames))
        np.add.at(imp, (which[ok], idx[ok]), gains[ok])
        a = np.exp(-1.0 / max(decay_s * self.fps, 1e-3))
        env = lfilter([1.0], [1.0, -a], imp, axis=1)
        env[env < 1e-12] = 0.0     # long decays would reach subnormals, which are slow
        return env

    def beats(self, bpm: float, subdivision: int = 1, swing: float = 0.5) -> np.ndarray:
        """Onset times (s) of a steady grid; ``swing`` > 0.5 delays every second one."""
        step = 60.0 / bpm / subdivision
        seconds = self.frames / self.fps
        k = np.arange(int(seconds / step) + 2)
        t = self.rng.uniform(0, step) + (k // 2) * 2 * step + (k % 2) * 2 * step * swing
        return t[t < seconds]

    def add(self, profile: np.ndarray, env: np.ndarray, level: float) -> None:
        """power += level * profile x env (profiles [n_mels, r] against envelopes [r, frames]).

        One broadcast multiply per row, not a BLAS product: a rank-r update this
        small is faster without BLAS threads, which also contend with the workers."""
        profile = (level * profile).reshape(len(self.bins), -1).astype(np.float32)
        profile[profile < 1e-12] = 0.0     # far tails: subnormal floats are slow everywhere
        env = env.reshape(-1, self.frames).astype(np.float32)
        for k in range(env.shape[0]):
            rows = np.flatnonzero(profile[:, k])
            if len(rows):
                lo, hi = rows[0], rows[-1] + 1
                self.power[lo:hi] += profile[lo:hi, k, None] * env[k]


# --- class recipes: the cues of synthetic.py's recipes of the same names ---------------

def _pulse(g: _Grid, level: float = 1.0):
    """Kick on every beat (low bands), hi-hat noise on the off-beats (top bands)."""
    t = g.beats(g.rng.uniform(110, 145), 2)
    kick, hat = t[0::2], t[1::2]
    g.add(g.band(40, 160), g.onsets(kick, g.rng.uniform(0.8, 1.0, len(kick)) ** 2, 0.08), level)
    g.add(g.band(6000, 10000), g.onsets(hat, g.rng.uniform(0.15, 0.3, len(hat)) ** 2, 0.015),
          level * 0.3)


def _drone(g: _Grid, level: float = 1.0):
    """A sustained low sawtooth-like tone and its fifth, slow tremolo, no onsets."""
    f0 = _hz(g.rng.uniform(38, 52))
    saw = [(k, 1.0 / k) for k in range(1, 25)]
    profile = g.partials(f0, saw) + 0.25 * g.partials(f0 * 1.5, saw)
    t = np.arange(g.frames) / g.fps
    env = (1.0 + 0.4 * np.sin(2 * np.pi * g.rng.uniform(0.2, 0.8) * t)) ** 2
    env *= np.minimum(t / 0.3, 1.0)
    g.add(profile, env, level * 0.6)


def _chime(g: _Grid, level: float = 1.0):
    """High inharmonic bell partials at random (Poisson) onsets, long ring."""
    seconds = g.frames / g.fps
    rate = g.rng.uniform(3.0, 6.0)
    t = np.cumsum(g.rng.exponential(1.0 / rate, int(seconds * rate * 2) + 4))
    t = t[t < seconds] + g.rng.uniform(0, 0.3)
    pitches = g.rng.uniform(79, 83) + np.concatenate([PENTATONIC, PENTATONIC + 12])
    note = g.rng.integers(0, len(pitches), len(t))
    env = g.onsets(t, g.rng.uniform(0.3, 0.6, len(t)) ** 2, g.rng.uniform(0.1, 0.25), note,
                   len(pitches))
    g.add(g.partials(_hz(pitches), BELL), env, level)


def _swing(g: _Grid, level: float = 1.0):
    """Plucked mid-range pentatonic melody on swung eighths, snare on beats 2 and 4."""
    t = g.beats(g.rng.uniform(85, 125), 2, swing=g.rng.uniform(0.62, 0.7))
    pitches = g.rng.uniform(48, 58) + np.concatenate([PENTATONIC, PENTATONIC + 12])
    walk = (g.rng.integers(0, 5) + np.cumsum(g.rng.integers(-2, 3, len(t)))) % 10
    pluck = [(k, 0.8 ** k) for k in range(1, 9)]
    env = g.onsets(t, 0.25, g.rng.uniform(0.08, 0.2), walk, len(pitches))
    g.add(g.partials(_hz(pitches), pluck), env, level)
    snare = t[np.arange(len(t)) % 4 == 2]
    g.add(g.band(1000, 4000), g.onsets(snare, g.rng.uniform(0.2, 0.35, len(snare)) ** 2, 0.04),
          level * 0.1)


MEL_RECIPES = {"pulse": _pulse, "drone": _drone, "chime": _chime, "swing": _swing}


def mel_clip(name: str, frames: int, rng: np.random.Generator,
             params: FeatureParams = FeatureParams()) -> np.ndarray:
    """float32 [n_mels, frames] log-mel features in [0, 1] of one clip of class ``name``:
    its recipe, often a quiet element of another class, background noise and speckle."""
    g = _Grid(rng, params, frames)
    MEL_RECIPES[name](g)
    if rng.random() < 0.5:     # another class's element: mostly quiet, at times as loud
        other = rng.choice([c for c in MEL_RECIPES if c != name])
        loud = rng.random() < STRONG_MIX
        MEL_RECIPES[other](g, level=rng.uniform(*(0.5, 1.0) if loud else (0.05, 0.2)) ** 2)
    peak = g.power.max() or 1.0
    lo = rng.uniform(20, 500)
    noise = g.band(lo, min(lo * rng.uniform(8, 40), params.fmax))[:, None] + 1e-3
    g.power += (noise * (peak * rng.uniform(0.003, 0.1) ** 2)).astype(np.float32)
    g.power *= rng.standard_exponential(g.power.shape, dtype=np.float32)
    # the audio path's scaling: 0 is top_db below the loudest bin, 1 the loudest
    floor = g.power.max() * np.float32(10.0 ** (-params.top_db / 10.0))
    db = np.log10(np.maximum(g.power, floor, out=g.power), out=g.power)
    db *= np.float32(10.0 / params.top_db)
    db -= db.max()             # the loudest bin exactly 0 -> exactly 1 below
    db += np.float32(1.0)
    return np.clip(db, 0.0, 1.0, out=db)
