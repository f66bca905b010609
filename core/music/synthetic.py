"""The embedded default dataset: synthetic "genres" generated on the fly, seeded.

Real genres differ in rhythm (pulse rate and pattern), timbre (harmonic
content, noise bands) and pitch content; each synthetic class is a recipe that
differs from the others along those same axes, so the network has to learn the
same kinds of cues it needs on music. Every clip varies at random (tempo,
pitch, loudness, background noise, and often a quiet element borrowed from
another class), so the task is learnable but not trivial. No files, no
downloads: 4 classes x 40 clips of 3 s take a few seconds.
"""
from __future__ import annotations

import numpy as np

from genrecnn.music.dataset import Dataset
from genrecnn.errors import DataError
from genrecnn.music.features import FeatureParams, audio_to_features

PENTATONIC = np.array([0, 2, 4, 7, 9])
_TABLE = 4096  # wavetable length for harmonic tones


def _midi_hz(m):
    return 440.0 * 2.0 ** ((np.asarray(m, dtype=np.float64) - 69.0) / 12.0)


class _Synth:
    """Building blocks on one clip's timeline (float64 samples, added in place)."""

    def __init__(self, rng: np.random.Generator, sr: int, n: int):
        self.rng, self.sr, self.n = rng, sr, n
        self.out = np.zeros(n)

    def t(self, seconds: float) -> np.ndarray:
        return np.arange(int(seconds * self.sr)) / self.sr

    def place(self, event: np.ndarray, start_s: float, gain: float = 1.0) -> None:
        i = int(start_s * self.sr)
        if i >= self.n or i + len(event) <= 0:
            return
        j = min(self.n, i + len(event))
        self.out[max(i, 0):j] += gain * event[max(-i, 0):j - i]

    def band_noise(self, n: int, lo: float, hi: float) -> np.ndarray:
        """White noise kept between ``lo`` and ``hi`` Hz (FFT mask), unit RMS."""
        spec = np.fft.rfft(self.rng.standard_normal(n))
        freqs = np.fft.rfftfreq(n, 1.0 / self.sr)
        spec[(freqs < lo) | (freqs > hi)] = 0.0
        x = np.fft.irfft(spec, n)
        return x / (np.sqrt(np.mean(x ** 2)) + 1e-12)

    def tone(self, f0: float, seconds: float, partials, decay: float | None,
             attack: float = 0.005) -> np.ndarray:
        """Sum of sines at ``f0 * ratio`` with amplitudes; exponential decay (None: sustained)."""
        t = self.t(seconds)
        x = np.zeros_like(t)
        nyquist = self.sr / 2
        harmonic = [(r, a) for r, a in partials if float(r).is_integer() and f0 * r < nyquist]
        if harmonic:  # one period in a wavetable: cost independent of the partial count
            phase = np.arange(_TABLE) / _TABLE
            table = sum(a * np.sin(2 * np.pi * r * phase + self.rng.uniform(0, 2 * np.pi))
                        for r, a in harmonic)
            x += table[((f0 * t) * _TABLE).astype(np.int64) % _TABLE]
        for ratio, amp in partials:
            f = f0 * ratio
            if not float(ratio).is_integer() and f < nyquist:
                x += amp * np.sin(2 * np.pi * f * t + self.rng.uniform(0, 2 * np.pi))
        env = np.minimum(t / attack, 1.0)
        if decay is not None:
            env *= np.exp(-t / decay)
        return x * env

    def beats(self, bpm: float, subdivision: int = 1, swing: float = 0.5):
        """Onset times (s) of a steady grid; ``swing`` > 0.5 delays every second subdivision."""
        step = 60.0 / bpm / subdivision
        offset = self.rng.uniform(0, step)
        times = []
        k = 0
        while True:
            pair = (k // 2) * 2 * step
            t = offset + pair + (0 if k % 2 == 0 else 2 * step * swing)
            if t >= self.n / self.sr:
                break
            times.append((k, t))
            k += 1
        return times


# --- class recipes: each adds its own rhythm, timbre and pitch content ------------------

def _pulse(s: _Synth, level: float = 1.0):
    """Kick on every beat, hi-hat noise on the off-beats, fast tempo, no pitch."""
    bpm = s.rng.uniform(110, 145)
    t = s.t(0.25)
    sweep = 2 * np.pi * np.cumsum(45 + 90 * np.exp(-t / 0.03)) / s.sr
    kick = np.sin(sweep) * np.exp(-t / 0.08)
    hat = s.band_noise(int(0.04 * s.sr), 6000, 10000) * np.exp(-s.t(0.04) / 0.01)
    for k, on in s.beats(bpm, 2):
        if k % 2 == 0:
            s.place(kick, on, level * s.rng.uniform(0.8, 1.0))
        else:
            s.place(hat, on, level * s.rng.uniform(0.15, 0.3))


def _drone(s: _Synth, level: float = 1.0):
    """A sustained low sawtooth-like tone and its fifth, slow tremolo, no onsets."""
    f0 = _midi_hz(s.rng.uniform(38, 52))
    sec = s.n / s.sr
    n_h = 24
    saw = [(k, 1.0 / k) for k in range(1, n_h + 1)]
    x = s.tone(f0, sec, saw, None, attack=0.3) + 0.5 * s.tone(f0 * 1.5, sec, saw, None, 0.3)
    t = s.t(sec)
    x *= 1.0 + 0.4 * np.sin(2 * np.pi * s.rng.uniform(0.2, 0.8) * t)
    s.place(x / np.abs(x).max(), 0.0, level * 0.8)


def _chime(s: _Synth, level: float = 1.0):
    """High inharmonic bell partials at irregular (Poisson) onsets, long ring."""
    rate = s.rng.uniform(3.0, 6.0)
    root = s.rng.uniform(79, 83)
    on = s.rng.uniform(0, 0.3)
    bell = [(1.0, 1.0), (2.0, 0.6), (2.76, 0.5), (5.40, 0.3), (8.93, 0.2)]
    while on < s.n / s.sr:
        f0 = _midi_hz(root + s.rng.choice(PENTATONIC) + 12 * s.rng.integers(0, 2))
        s.place(s.tone(f0, 0.8, bell, s.rng.uniform(0.1, 0.25)), on,
                level * s.rng.uniform(0.3, 0.6))
        on += s.rng.exponential(1.0 / rate)


def _swing(s: _Synth, level: float = 1.0):
    """Plucked mid-range pentatonic melody on swung eighths, snare on beats 2 and 4."""
    bpm = s.rng.uniform(85, 125)
    root = s.rng.uniform(48, 58)
    pluck = [(k, 0.8 ** k) for k in range(1, 9)]
    snare_len = int(0.15 * s.sr)
    snare = s.band_noise(snare_len, 1000, 4000) * np.exp(-s.t(0.15) / 0.04)
    note = s.rng.integers(0, 5)
    for k, on in s.beats(bpm, 2, swing=s.rng.uniform(0.62, 0.7)):
        note = (note + s.rng.integers(-2, 3)) % 10
        f0 = _midi_hz(root + PENTATONIC[note % 5] + 12 * (note // 5))
        s.place(s.tone(f0, 0.5, pluck, s.rng.uniform(0.08, 0.2)), on, level * 0.5)
        if k % 4 == 2:
            s.place(snare, on, level * s.rng.uniform(0.2, 0.35))


def _hiss(s: _Synth, level: float = 1.0):
    """Band-limited noise in slow swells: timbre without pitch or beat."""
    lo = s.rng.uniform(1500, 4000)
    x = s.band_noise(s.n, lo, lo * s.rng.uniform(1.5, 2.5))
    t = np.arange(s.n) / s.sr
    x *= 0.55 + 0.45 * np.sin(2 * np.pi * s.rng.uniform(0.3, 1.0) * t + s.rng.uniform(0, 6.3))
    s.place(x / np.abs(x).max(), 0.0, level * 0.6)


def _arp(s: _Synth, level: float = 1.0):
    """Fast sixteenth-note arpeggios of pure tones over two octaves."""
    bpm = s.rng.uniform(115, 160)
    root = s.rng.uniform(62, 72)
    triad = np.array([0, 4, 7, 12, 16, 19, 24]) if s.rng.random() < 0.5 \
        else np.array([0, 3, 7, 12, 15, 19, 24])
    for k, on in s.beats(bpm, 4):
        step = k % (2 * len(triad) - 2)
        i = step if step < len(triad) else 2 * len(triad) - 2 - step
        s.place(s.tone(_midi_hz(root + triad[i]), 0.2, [(1, 1.0), (2, 0.2)], 0.06), on,
                level * 0.4)


def _chord(s: _Synth, level: float = 1.0):
    """Sustained square-ish (odd harmonic) triads, changing once a bar: slow harmony."""
    bpm = s.rng.uniform(60, 90)
    bar = 4 * 60.0 / bpm
    odd = [(k, 1.0 / k) for k in range(1, 14, 2)]
    root = s.rng.uniform(55, 62)
    on = -s.rng.uniform(0, bar)
    while on < s.n / s.sr:
        base = root + s.rng.choice([0, 5, 7, 9])
        for interval in (0, 4, 7):
            s.place(s.tone(_midi_hz(base + interval), bar, odd, bar * 0.8, attack=0.05), on,
                    level * 0.25)
        on += bar


def _clicks(s: _Synth, level: float = 1.0):
    """Broadband clicks in a three-against-two polyrhythm over a low bass line."""
    bpm = s.rng.uniform(80, 110)
    click = s.band_noise(int(0.01 * s.sr), 200, 10000) * np.exp(-s.t(0.01) / 0.002)
    bar = 4 * 60.0 / bpm
    for sub, gain in ((3, 0.5), (2, 0.35)):
        for k in range(int(s.n / s.sr / bar * sub) + 2):
            s.place(click, k * bar / sub, level * gain)
    bass_root = s.rng.uniform(33, 40)
    for k, on in s.beats(bpm, 1):
        f0 = _midi_hz(bass_root + s.rng.choice([0, 3, 5, 7]))
        s.place(s.tone(f0, 0.5, [(1, 1.0), (2, 0.3)], 0.2), on, level * 0.6)


RECIPES = {"pulse": _pulse, "drone": _drone, "chime": _chime, "swing": _swing, "hiss": _hiss,
           "arp": _arp, "chord": _chord, "clicks": _clicks}
CLASS_NAMES = list(RECIPES)


def synth_clip(name: str, seconds: float, sr: int, rng: np.random.Generator) -> np.ndarray:
    """One clip of class ``name``: its recipe, often a quiet element of another class,
    background noise at a random level and a random loudness."""
    s = _Synth(rng, sr, int(seconds * sr))
    RECIPES[name](s)
    if rng.random() < 0.5:
        other = rng.choice([c for c in CLASS_NAMES if c != name])
        RECIPES[other](s, level=rng.uniform(0.05, 0.2))
    peak = np.abs(s.out).max() or 1.0
    y = s.out / peak
    lo = rng.uniform(20, 500)
    noise = s.band_noise(s.n, lo, min(lo * rng.uniform(8, 40), sr / 2))
    y = y + noise * rng.uniform(0.003, 0.03)
    y *= rng.uniform(0.2, 0.9) / (np.abs(y).max() + 1e-12)
    return y.astype(np.float32)


def synthetic_dataset(n_per_class: int = 40, n_classes: int = 4, seconds: float = 3.0,
                      seed: int = 0, params: FeatureParams = FeatureParams(),
                      progress: bool = False) -> Dataset:
    """A seeded :class:`Dataset` of ``n_classes`` synthetic genres (class names "pulse",
    "drone", "chime", "swing", ...), ``n_per_class`` clips of ``seconds`` each.

    The same arguments give the same arrays; each clip has its own random stream,
    so growing ``n_per_class`` keeps the earlier clips. ``progress``: a bar on
    stderr (the default set takes 15-36 s to make, silence looked like a hang).
    """
    from tqdm import tqdm

    if not 2 <= n_classes <= len(CLASS_NAMES):
        raise DataError(f"n_classes={n_classes}: the synthetic dataset has 2 to "
                        f"{len(CLASS_NAMES)} classes ({', '.join(CLASS_NAMES)})")
    if n_per_class < 1:
        raise DataError(f"n_per_class={n_per_class} must be at least 1")
    if seconds * params.sr < params.n_fft or params.frames_for(int(seconds * params.sr)) < 16:
        raise DataError(f"seconds={seconds} is too short for a spectrogram; use at least 0.5")
    names = sorted(CLASS_NAMES[:n_classes])
    xs, ys, ids = [], [], []
    bar = tqdm(total=len(names) * n_per_class, desc="making the synthetic set", unit="clip",
               disable=not progress, dynamic_ncols=True)
    for k, name in enumerate(names):
        for i in range(n_per_class):
            bar.update(1)
            rng = np.random.default_rng([seed, CLASS_NAMES.index(name), i])
            xs.append(audio_to_features(synth_clip(name, seconds, params.sr, rng), params))
            ys.append(k)
            ids.append(f"{name}/{name}.{i:05d}")
    bar.close()
    n = len(ids)
    return Dataset(np.stack(xs), np.array(ys, dtype=np.int64), np.arange(n, dtype=np.int64), ids,
                   names, params, [])
