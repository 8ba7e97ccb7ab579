"""New training voices made from recorded ones: pitch and vocal-tract length changed with the WORLD vocoder.

A corpus with few speakers teaches a model their voices. Each converted voice takes one real
speaker's clips and gives them another pitch, another intonation range and other formant
frequencies (the spectral envelope stretched along the frequency axis, as a shorter or longer
vocal tract does), while what was said, its timing and articulation stay the speaker's own.
Unlike speed perturbation, which moves pitch and formants together, the two change
independently here, as they do between people. The analysis and synthesis are WORLD's
(``pyworld``: DIO + StoneMask pitch, CheapTrick envelope, D4C aperiodicity).

Each converted voice is one speaker label, with every clip it reads converted the same way, so
that per-speaker normalisation gets consistent statistics for it. Clips are cached under a hash
of the source file and the voice change: a second run converts only what is missing.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import soundfile
import soxr

from asr.data import Utterance
from asr.errors import AsrError

PITCH_RATIO_RANGE = (0.6, 1.8)  # factor on the speaker's pitch, drawn log-uniformly per voice
FORMANT_RATIO_RANGE = (0.85, 1.2)  # factor on the formant frequencies, drawn log-uniformly per voice
PITCH_RANGE_RANGE = (0.7, 1.4)  # factor on the intonation's excursions around the median pitch, drawn uniformly
FRAME_PERIOD_MS = 5.0  # WORLD's analysis hop
WORLD_MIN_RATE = 16000  # audio below this rate is converted at this rate: WORLD's D4C finds no aperiodicity
# bands under about 12 kHz sampling and would make every frame noise-excited (a whisper)


@dataclass(frozen=True)
class VoiceChange:
    pitch_ratio: float  # F0 multiplied by this (0.5: an octave lower)
    formant_ratio: float  # spectral envelope stretched along frequency by this (> 1: formants higher, as from a
    # shorter vocal tract)
    pitch_range: float  # excursions of log F0 around its median multiplied by this (1: the speaker's own intonation)

    @property
    def tag(self) -> str:
        """A short name for the change, part of the converted voice's speaker label ("p1.32f1.10r0.90")."""
        return f"p{self.pitch_ratio:.2f}f{self.formant_ratio:.2f}r{self.pitch_range:.2f}"


def draw_change(rng: random.Random) -> VoiceChange:
    """A voice change drawn from the ranges above, rounded to two decimals."""

    def log_uniform(low: float, high: float) -> float:
        return round(math.exp(rng.uniform(math.log(low), math.log(high))), 2)

    return VoiceChange(
        log_uniform(*PITCH_RATIO_RANGE), log_uniform(*FORMANT_RATIO_RANGE), round(rng.uniform(*PITCH_RANGE_RANGE), 2)
    )


def _import_pyworld():
    try:
        import pyworld
    except ImportError as err:
        raise AsrError(f"voice conversion needs pyworld ({err}): pip install 'asr[voices]'") from None
    return pyworld


def stretch_frequency(spectra: np.ndarray, ratio: float) -> np.ndarray:
    """``spectra`` ``(frames, bins)`` with its frequency axis stretched by ``ratio``: the value at bin
    ``k`` comes from bin ``k / ratio`` (linear interpolation; past the last bin, the last bin's value)."""
    bins = spectra.shape[1]
    source = np.clip(np.arange(bins) / ratio, 0, bins - 1)
    below = np.floor(source).astype(int)
    above = np.minimum(below + 1, bins - 1)
    weight = source - below
    return spectra[:, below] * (1 - weight) + spectra[:, above] * weight


def change_voice(samples: np.ndarray, sample_rate: int, change: VoiceChange) -> np.ndarray:
    """``samples`` ``(num_samples,)`` spoken by the changed voice: the same number of samples, at the
    same RMS level. A clip with no voiced frame keeps its (noise-like) excitation, with only the
    envelope stretched. Audio below ``WORLD_MIN_RATE`` is resampled up for the conversion and back."""
    if sample_rate < WORLD_MIN_RATE:
        upsampled = soxr.resample(np.asarray(samples, dtype=np.float64), sample_rate, WORLD_MIN_RATE)
        converted = soxr.resample(change_voice(upsampled, WORLD_MIN_RATE, change), WORLD_MIN_RATE, sample_rate)
        return _matched(converted, samples)
    pyworld = _import_pyworld()
    audio = np.ascontiguousarray(samples, dtype=np.float64)
    pitch, times = pyworld.dio(audio, sample_rate, frame_period=FRAME_PERIOD_MS)
    pitch = pyworld.stonemask(audio, pitch, times, sample_rate)
    envelope = pyworld.cheaptrick(audio, pitch, times, sample_rate)  # (frames, fft_size // 2 + 1)
    aperiodicity = pyworld.d4c(audio, pitch, times, sample_rate)
    voiced = pitch > 0
    if voiced.any():
        log_pitch = np.log(pitch[voiced])
        median = np.median(log_pitch)
        pitch[voiced] = np.exp(median + math.log(change.pitch_ratio) + change.pitch_range * (log_pitch - median))
    envelope = stretch_frequency(envelope, change.formant_ratio)
    aperiodicity = stretch_frequency(aperiodicity, change.formant_ratio)
    contiguous = np.ascontiguousarray  # WORLD's C code takes row-major arrays only
    converted = pyworld.synthesize(
        contiguous(pitch), contiguous(envelope), contiguous(aperiodicity), sample_rate, FRAME_PERIOD_MS
    )
    return _matched(converted, audio)


def _matched(converted: np.ndarray, original: np.ndarray) -> np.ndarray:
    """``converted`` cut or padded to ``original``'s length and scaled to its RMS level (without clipping)."""
    converted = np.pad(converted, (0, max(0, len(original) - len(converted))))[: len(original)]
    level_in, level_out = np.sqrt(np.mean(np.square(original))), np.sqrt(np.mean(converted**2))
    if level_out > 0:
        converted = converted * (level_in / level_out)
    peak = np.max(np.abs(converted), initial=0.0)
    return converted / peak * 0.99 if peak > 0.99 else converted  # no clipping in the 16-bit file


@dataclass(frozen=True)
class Conversion:
    source: Utterance  # the recorded clip
    change: VoiceChange  # what the converted voice does to it
    speaker: str  # the converted voice's speaker label: the source speaker's and the change's tag


def plan_conversions(
    utterances: list[Utterance], voices_per_speaker: int, share: float, seed: int
) -> list[Conversion]:
    """``voices_per_speaker`` new voices for each speaker of ``utterances`` (utterances without a label
    count as one speaker, "unlabelled"); each voice reads a random ``share`` of its speaker's clips
    (at least one), so that the new voices together have ``voices_per_speaker * share`` times the
    recorded audio. Voice changes and clips are drawn from ``seed``."""
    if voices_per_speaker < 1 or not 0 < share <= 1:
        raise AsrError(f"need at least one voice per speaker and a share in (0, 1] (got {voices_per_speaker}, {share})")
    rng = random.Random(seed)
    by_speaker: dict[str, list[Utterance]] = defaultdict(list)
    for utt in utterances:
        by_speaker[utt.speaker or "unlabelled"].append(utt)
    plan = []
    for speaker in sorted(by_speaker):
        clips = by_speaker[speaker]
        for _voice in range(voices_per_speaker):
            change = draw_change(rng)
            chosen = rng.sample(clips, max(1, round(share * len(clips))))
            plan += [Conversion(utt, change, f"{speaker}~{change.tag}") for utt in chosen]
    return plan


def clip_name(conversion: Conversion) -> str:
    """A file name that changes whenever the source clip (file and segment) or the change does (the cache key)."""
    source = conversion.source
    key = f"{source.audio_filepath}|{source.offset}|{source.duration}|{conversion.change}"
    return hashlib.sha1(key.encode()).hexdigest()[:16]


def convert_one(conversion: Conversion, out_dir: Path) -> Utterance:
    """Convert one clip into ``out_dir/<hash>.wav`` (16-bit, at the source file's rate) unless that file exists."""
    source = conversion.source
    name = clip_name(conversion)
    wav = out_dir / f"{name}.wav"
    if not wav.is_file():
        try:
            rate = soundfile.info(source.audio_filepath).samplerate
        except (OSError, RuntimeError) as err:  # soundfile raises LibsndfileError, a RuntimeError
            raise AsrError(f"{source.audio_filepath}: cannot read audio ({err})") from None
        samples = source.load(rate).numpy()
        partial = out_dir / f".{name}.partial.wav"
        soundfile.write(str(partial), change_voice(samples, rate, conversion.change), rate, subtype="PCM_16")
        partial.replace(wav)  # atomic: a killed run never leaves half a file under the cached name
    info = soundfile.info(str(wav))
    return Utterance(
        str(wav.resolve()), source.text, round(info.frames / info.samplerate, 3), conversion.speaker, f"voice-{name}"
    )


def _attempt(job: tuple[Conversion, Path]) -> Utterance | str:
    try:
        return convert_one(*job)
    except (AsrError, OSError, RuntimeError) as err:
        return str(err)


def convert_voices(
    plan: list[Conversion],
    out_dir: Path,
    jobs: int,
    progress: Callable[[Iterable], Iterable] = lambda it: it,
) -> tuple[list[Utterance], list[str]]:
    """Convert every clip of ``plan`` with ``jobs`` processes.

    Returns the converted utterances (in the order of ``plan``) and one message per clip that
    failed, naming its file; a failure never stops the others.
    """
    _import_pyworld()  # a missing package is one clear error, not one per clip
    out_dir.mkdir(parents=True, exist_ok=True)
    work = [(conversion, out_dir) for conversion in plan]
    if jobs <= 1:
        results = list(progress(map(_attempt, work)))
    else:
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            results = list(progress(pool.map(_attempt, work, chunksize=16)))
    return [r for r in results if isinstance(r, Utterance)], [r for r in results if isinstance(r, str)]
