"""Generated number and letter phrases: the short forms (digits, numbers, years, spellings) that
read sentences rarely contain but users say, for speech synthesis and language models."""

from __future__ import annotations

import random

from num2words import num2words

from asr.data.text import normalize_text

DIGITS = "zero one two three four five six seven eight nine".split()


def generate_phrases(count: int, words: list[str], seed: int) -> list[str]:
    """``count`` normalised phrases drawn in turn from four kinds: digit strings ("four one two"),
    numbers ("three hundred and twelve"), years ("nineteen eighty four") and words of ``words``
    spelled out letter by letter ("c a t")."""
    rng = random.Random(seed)
    spellable = [w for w in words if w.isalpha() and 2 <= len(w) <= 10]
    kinds = [
        lambda: " ".join(rng.choice(DIGITS) for _ in range(rng.randint(1, 7))),
        lambda: num2words(rng.choice([rng.randint(0, 100), rng.randint(100, 9999), rng.randint(10000, 999999)])),
        lambda: num2words(rng.randint(1100, 2099), to="year"),
        lambda: " ".join(rng.choice(spellable)) if spellable else rng.choice(DIGITS),
    ]
    return [normalize_text(kinds[i % len(kinds)]()) for i in range(count)]
