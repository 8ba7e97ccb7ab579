"""Word boundaries from the audio alone, for clips of isolated words separated by pauses (yesno)."""

import numpy as np
import soundfile


def energy_segments(path, threshold=0.1, min_gap=0.15, min_length=0.1) -> list[tuple[float, float]]:
    """(start, end) seconds of the stretches whose 10 ms RMS exceeds ``threshold`` x the loudest;
    gaps shorter than ``min_gap`` are bridged and pieces shorter than ``min_length`` dropped."""
    samples, rate = soundfile.read(str(path), dtype="float32")
    hop = rate // 100
    frames = samples[: len(samples) // hop * hop].reshape(-1, hop)
    active = np.sqrt((frames**2).mean(axis=1)) > threshold * np.sqrt((frames**2).mean(axis=1)).max()
    segments, start = [], None
    for index, on in enumerate([*active, False]):
        if on and start is None:
            start = index
        elif not on and start is not None:
            if segments and (start - segments[-1][1]) * 0.01 < min_gap:
                start = segments.pop()[0]
            segments.append((start, index))
            start = None
    return [(a * 0.01, b * 0.01) for a, b in segments if (b - a) * 0.01 >= min_length]
