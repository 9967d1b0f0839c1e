"""The generated royalty-free music bed: a short chord-progression track synthesised with numpy.

Used when a draft's music segment has no ``src``: the renderer writes a WAV of the
right length for the mood and mixes it like any other music file. Everything here is
synthesised from scratch (additive pads, sine bass, plucked arpeggios, noise drums and a
convolution reverb), so there is nothing to license.
"""

from __future__ import annotations

import wave
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from nemowatch.local.vocabulary import DEFAULT_MOOD

SAMPLE_RATE = 44100

# Chord symbols as semitone offsets from the key root; four chords, looped.
_MAJ, _MIN = (0, 4, 7), (0, 3, 7)
_MAJ7, _MIN7, _DOM7 = (0, 4, 7, 11), (0, 3, 7, 10), (0, 4, 7, 10)


@dataclass(frozen=True)
class Style:
    """How one mood sounds: tempo, harmony and which layers play."""

    bpm: float
    root: int  # MIDI note of the key root in the pad's octave
    chords: tuple[tuple[int, tuple[int, ...]], ...]  # (degree offset, chord shape)
    bars_per_chord: int
    drums: str  # "four" | "lofi" | "boom" | "none"
    arp: str  # "eighths" | "quarters" | "none"
    swing: float  # 0 straight, 0.33 triplet swing for off-beats
    brightness: float  # harmonics rolloff of the pad: higher is brighter
    reverb_s: float
    lowpass_hz: float | None


# One style per mood of vocabulary.MOODS, keyed by its name (tests/test_render.py checks the keys).
STYLES: dict[str, Style] = {
    # I–V–vi–IV in C: the pop progression, four-on-the-floor, bright plucks.
    "upbeat": Style(
        112, 60, ((0, _MAJ), (7, _MAJ), (9, _MIN), (5, _MAJ)), 1, "four", "eighths", 0.0, 0.9, 0.9, None
    ),
    # Imaj7–IVmaj7–vi7–IVmaj7 in D: slow, airy, bell-like arpeggio, no drums.
    "calm": Style(
        72, 62, ((0, _MAJ7), (5, _MAJ7), (9, _MIN7), (5, _MAJ7)), 1, "none", "quarters", 0.0, 0.6, 2.0, None
    ),
    # ii7–V7–Imaj7–vi7 in F: jazzy sevenths, swung hats, dusty low-pass.
    "lofi": Style(
        82, 65, ((2, _MIN7), (7, _DOM7), (0, _MAJ7), (9, _MIN7)), 1, "lofi", "quarters", 0.3, 0.5, 1.2, 3800.0
    ),
    # i–VI–III–VII in A minor: long swells and low booms.
    "cinematic": Style(
        64, 57, ((0, _MIN), (8, _MAJ), (3, _MAJ), (10, _MAJ)), 2, "boom", "none", 0.0, 0.7, 2.6, None
    ),
}


def _hz(midi: float) -> float:
    return 440.0 * 2.0 ** ((midi - 69.0) / 12.0)


def _envelope(n: int, sr: int, attack_s: float, release_s: float) -> np.ndarray:
    """Linear attack, flat sustain, cosine release: no clicks at note edges."""
    env = np.ones(n, dtype=np.float64)
    a = min(n, max(1, int(attack_s * sr)))
    r = min(n - a, max(1, int(release_s * sr)))
    env[:a] = np.linspace(0.0, 1.0, a, endpoint=False)
    if r > 0:
        env[n - r :] *= 0.5 * (1.0 + np.cos(np.linspace(0.0, np.pi, r)))
    return env


@lru_cache(maxsize=64)
def _wavetable(harmonics: int, rolloff: float, size: int = 4096) -> np.ndarray:
    """One period of a band-limited additive wave: harmonic k at rolloff**(k-1)/k (plus a wrap sample)."""
    x = np.arange(size + 1) / size
    wave = np.zeros(size + 1)
    for k in range(1, harmonics + 1):
        wave += (rolloff ** (k - 1) / k) * np.sin(2 * np.pi * k * x)
    return wave


@lru_cache(maxsize=256)
def _tone(freq: float, n: int, sr: int, harmonics: int, rolloff: float) -> np.ndarray:
    """``n`` samples of the wavetable tone at ``freq`` (cached: chords and plucks repeat)."""
    harmonics = max(1, min(harmonics, int(sr * 0.45 / freq)))  # stay band-limited
    table = _wavetable(harmonics, rolloff)
    size = len(table) - 1
    pos = (np.arange(n) * (freq * size / sr)) % size
    index = pos.astype(np.int64)
    frac = pos - index
    out = table[index] * (1.0 - frac) + table[index + 1] * frac
    out.flags.writeable = False
    return out


class _Mixer:
    """A stereo buffer that notes are added into at sample offsets."""

    def __init__(self, n: int, sr: int) -> None:
        self.sr = sr
        self.buf = np.zeros((n, 2))

    def add(self, start_s: float, mono: np.ndarray, gain: float, pan: float = 0.0) -> None:
        start = int(start_s * self.sr)
        if start >= len(self.buf):
            return
        end = min(len(self.buf), start + len(mono))
        piece = mono[: end - start] * gain
        # Constant-power pan: -1 left, +1 right.
        angle = (pan + 1.0) * np.pi / 4
        self.buf[start:end, 0] += piece * np.cos(angle)
        self.buf[start:end, 1] += piece * np.sin(angle)


def _kick(sr: int, length_s: float = 0.35, low: float = 48.0) -> np.ndarray:
    n = int(length_s * sr)
    t = np.arange(n) / sr
    freq = low + 90.0 * np.exp(-t * 30.0)  # pitch drop gives the thump
    phase = 2 * np.pi * np.cumsum(freq) / sr
    return np.sin(phase) * np.exp(-t * (4.0 / length_s))


def _noise_hit(
    sr: int, rng: np.random.Generator, length_s: float, decay: float, tone_hz: float = 0.0
) -> np.ndarray:
    n = int(length_s * sr)
    t = np.arange(n) / sr
    noise = rng.standard_normal(n)
    if tone_hz:  # a body under the snare's noise
        noise = 0.6 * noise + 0.8 * np.sin(2 * np.pi * tone_hz * t)
    return noise * np.exp(-t * decay)


def _highpass(x: np.ndarray, sr: int, hz: float) -> np.ndarray:
    return x - _lowpass(x, sr, hz)


def _lowpass(x: np.ndarray, sr: int, hz: float) -> np.ndarray:
    """A gentle low-pass done in the frequency domain (fast for whole tracks)."""
    spec = np.fft.rfft(x, axis=0)
    freqs = np.fft.rfftfreq(x.shape[0], 1.0 / sr)
    gain = 1.0 / np.sqrt(1.0 + (freqs / hz) ** 4)  # second-order Butterworth magnitude
    return np.fft.irfft(spec * (gain[:, None] if x.ndim == 2 else gain), n=x.shape[0], axis=0)


def _reverb(x: np.ndarray, sr: int, seconds: float, rng: np.random.Generator, wet: float) -> np.ndarray:
    """Convolution with a decaying stereo noise tail: a cheap, smooth room."""
    n_ir = int(seconds * sr)
    t = np.arange(n_ir) / sr
    decay = np.exp(-t * (6.9 / seconds))  # -60 dB at `seconds`
    ir = rng.standard_normal((n_ir, 2)) * decay[:, None]
    ir = _lowpass(ir, sr, 5000.0)
    ir /= np.sqrt(np.sum(ir**2, axis=0, keepdims=True))
    size = 1 << int(np.ceil(np.log2(x.shape[0] + n_ir)))
    tail = np.fft.irfft(np.fft.rfft(x, size, axis=0) * np.fft.rfft(ir, size, axis=0), size, axis=0)
    return x + wet * tail[: x.shape[0]]


def synthesize(
    mood: str | None, duration_s: float, *, sample_rate: int = SAMPLE_RATE, seed: int = 7
) -> np.ndarray:
    """A stereo float track (n, 2) in [-1, 1] of ``duration_s`` for a mood (unknown moods play the default mood)."""
    style = STYLES.get(mood or DEFAULT_MOOD, STYLES[DEFAULT_MOOD])
    sr = sample_rate
    rng = np.random.default_rng(seed)
    beat = 60.0 / style.bpm
    bar = 4 * beat
    n = max(1, round(duration_s * sr))
    mix = _Mixer(n + int(2 * sr), sr)
    bars = int(np.ceil(duration_s / bar)) + 1

    for b in range(bars):
        index = (b // style.bars_per_chord) % len(style.chords)
        degree, shape = style.chords[index]
        bar_start = b * bar
        first_bar_of_chord = b % style.bars_per_chord == 0
        chord = [style.root + degree + step for step in shape]
        chord = [note - 12 if note > style.root + 9 else note for note in chord]  # keep voicing compact
        if first_bar_of_chord:
            _pad(mix, chord, bar_start, bar * style.bars_per_chord, style)
            _bass(mix, style.root - 24 + degree, bar_start, bar * style.bars_per_chord, beat, style)
        _arp(mix, chord, bar_start, beat, style, b)
        _drums(mix, bar_start, beat, style, b)

    track = mix.buf[:n]
    if style.drums == "lofi":  # vinyl crackle: sparse clicks under everything
        clicks = (rng.random((n, 1)) < 0.0006) * rng.standard_normal((n, 1)) * 0.05
        track = track + clicks
    if style.lowpass_hz:
        track = _lowpass(track, sr, style.lowpass_hz)
    track = _reverb(track, sr, style.reverb_s, rng, wet=0.35)
    track = np.tanh(1.2 * track / (np.max(np.abs(track)) + 1e-9))  # soft saturation glues the mix
    return (0.89 * track / (np.max(np.abs(track)) + 1e-9)).astype(np.float32)


def _pad(mix: _Mixer, chord: list[int], start: float, length: float, style: Style) -> None:
    """Soft sustained chord: two detuned voices per note, panned apart."""
    sr = mix.sr
    n = int((length + 0.6) * sr)  # overlap the next chord slightly for legato
    env = _envelope(n, sr, min(0.8, length * 0.3), 0.9)
    for note in chord:
        for detune, pan in ((-0.06, -0.5), (0.06, 0.5)):
            voice = _tone(_hz(note + detune), n, sr, harmonics=7, rolloff=style.brightness)
            mix.add(start, voice * env, 0.05, pan)


def _bass(mix: _Mixer, note: int, start: float, length: float, beat: float, style: Style) -> None:
    sr = mix.sr
    hits: list[tuple[float, float]]
    if style.drums == "four":
        hits = [(i * beat / 2, beat / 2 * 0.9) for i in range(int(length / (beat / 2)))]
    elif style.drums == "lofi":
        hits = [(0.0, beat * 1.4), (beat * 1.5, beat * 0.9), (beat * 2.0, beat * 1.8)]
    else:
        hits = [(0.0, length)]
    for offset, dur in hits:
        n = int(dur * sr)
        tone = _tone(_hz(note), n, sr, harmonics=3, rolloff=0.35)
        mix.add(start + offset, tone * _envelope(n, sr, 0.01, min(0.2, dur * 0.5)), 0.32)


def _arp(mix: _Mixer, chord: list[int], start: float, beat: float, style: Style, bar_index: int) -> None:
    """Plucked broken chord an octave up; bell-like partials decay fast."""
    if style.arp == "none":
        return
    sr = mix.sr
    step = beat / 2 if style.arp == "eighths" else beat
    notes = [*chord, chord[0] + 12, *reversed(chord[1:])]
    count = round(4 * beat / step)
    for i in range(count):
        note = notes[(i + bar_index) % len(notes)] + 12
        swing = style.swing * step if i % 2 == 1 else 0.0
        n = int(1.2 * sr)
        t = np.arange(n) / sr
        pluck = _tone(_hz(note), n, sr, harmonics=4, rolloff=0.3) * np.exp(
            -t * (5.0 if style.arp == "eighths" else 3.0)
        )
        pluck *= _envelope(n, sr, 0.004, 0.05)
        mix.add(start + i * step + swing, pluck, 0.11, pan=0.35 if i % 2 else -0.35)


@lru_cache(maxsize=4)
def _kit(sr: int) -> dict[str, tuple[np.ndarray, ...]]:
    """A few variants of each drum sound, made once (filtering every hit would be slow)."""
    rng = np.random.default_rng(11)
    return {
        "kick": (_kick(sr),),
        "lofi_kick": (_kick(sr, 0.3, 52.0),),
        "boom": (_kick(sr, 1.6, 38.0),),
        "snare": tuple(
            _highpass(_noise_hit(sr, rng, 0.25, 18.0, tone_hz=190.0), sr, 600.0) for _ in range(3)
        ),
        "lofi_snare": tuple(
            _lowpass(_highpass(_noise_hit(sr, rng, 0.2, 22.0, tone_hz=180.0), sr, 400.0), sr, 4000.0)
            for _ in range(3)
        ),
        "hat": tuple(_highpass(_noise_hit(sr, rng, 0.06, 70.0), sr, 7000.0) for _ in range(4)),
        "lofi_hat": tuple(_highpass(_noise_hit(sr, rng, 0.05, 80.0), sr, 6000.0) for _ in range(4)),
    }


def _drums(mix: _Mixer, start: float, beat: float, style: Style, bar_index: int) -> None:
    kit = _kit(mix.sr)
    if style.drums == "four":
        for i in range(4):
            mix.add(start + i * beat, kit["kick"][0], 0.55)
        for i in (1, 3):
            mix.add(start + i * beat, kit["snare"][(bar_index + i) % 3], 0.2)
        for i in range(8):
            mix.add(start + i * beat / 2, kit["hat"][i % 4], 0.07 if i % 2 else 0.04, pan=0.2)
    elif style.drums == "lofi":
        for offset in (0.0, 2.5 * beat):
            mix.add(start + offset, kit["lofi_kick"][0], 0.45)
        for i in (1, 3):
            mix.add(start + i * beat, kit["lofi_snare"][(bar_index + i) % 3], 0.16)
        for i in range(8):
            swing = style.swing * beat / 2 if i % 2 else 0.0
            mix.add(start + i * beat / 2 + swing, kit["lofi_hat"][i % 4], 0.05 if i % 2 else 0.035, pan=-0.2)
    elif style.drums == "boom" and bar_index % 2 == 0:
        mix.add(start, kit["boom"][0], 0.6)


def write_music_bed(
    path: Path, mood: str | None, duration_s: float, *, sample_rate: int = SAMPLE_RATE
) -> Path:
    """Synthesise a bed for ``mood`` and write it as a 16-bit stereo WAV at ``path``."""
    samples = synthesize(mood, duration_s, sample_rate=sample_rate)
    pcm = (np.clip(samples, -1.0, 1.0) * 32767.0).astype("<i2")
    with wave.open(str(path), "wb") as out:
        out.setnchannels(2)
        out.setsampwidth(2)
        out.setframerate(sample_rate)
        out.writeframes(pcm.tobytes())
    return path
