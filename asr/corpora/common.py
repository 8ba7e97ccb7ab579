"""Helpers shared by the corpus modules."""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)


def warn_missing(corpus: str, missing: list[str]) -> None:
    """Log how many transcribed utterances have no audio (a partial download)."""
    if missing:
        log.warning(
            "%s: %d transcribed utterance(s) have no audio and were skipped (first: %s)",
            corpus, len(missing), missing[0],
        )
