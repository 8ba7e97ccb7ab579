"""Corpus preparation: a corpus' own directory layout -> JSON-lines manifests.

Each corpus module has ``prepare(src, **options) -> dict[split, list[Utterance]]``
and a ``DOWNLOAD_URL`` (or ``None`` when it cannot be fetched automatically); a corpus
published as several archives (LibriSpeech) has ``download_urls(subsets, mirror)`` instead.
A corpus with more text than audio also has ``lm_text(src, splits) -> list[str]``:
sentences for a language model, none of them in a dev or test split; one that
feeds speech synthesis has ``text_sources(src, splits) -> {file name: sentences}``.
"""

from __future__ import annotations

import logging
from pathlib import Path

from asr.data.corpora import an4, english, fsdd, librispeech, ljspeech, vctk, yesno
from asr.data.corpora.download import fetch, fetch_many
from asr.data.dataset import Utterance, write_manifest
from asr.utils.errors import AsrError

log = logging.getLogger(__name__)

LM_TEXT = "lm_text.txt"  # written beside the manifests by corpora that have lm_text()
CORPORA = {
    "yesno": yesno, "fsdd": fsdd, "an4": an4, "ljspeech": ljspeech, "librispeech": librispeech, "vctk": vctk,
    "english": english,
}  # fmt: skip


def prepare_corpus(name: str, src: str | Path, out: str | Path, **options) -> dict[str, int]:
    """Write ``<split>.jsonl`` for every non-empty split into ``out``; returns counts per split."""
    if name not in CORPORA:
        raise AsrError(f"unknown corpus {name!r} (known: {', '.join(sorted(CORPORA))})")
    src = Path(src)
    if not src.is_dir():
        raise AsrError(f"{src}: corpus folder does not exist")
    splits: dict[str, list[Utterance]] = CORPORA[name].prepare(src, **options)
    out = Path(out)
    counts = {}
    for split, utterances in splits.items():
        if not utterances:
            log.warning("%s: split %r has no audio here; no %s.jsonl written", name, split, split)
            continue
        write_manifest(out / f"{split}.jsonl", utterances)
        counts[split] = len(utterances)
    if not counts:
        raise AsrError(f"{src}: found no audio in the layout of corpus {name!r}")
    if hasattr(CORPORA[name], "lm_text"):
        sentences = CORPORA[name].lm_text(src, splits)
        (out / LM_TEXT).write_text("".join(s + "\n" for s in sentences), encoding="utf-8")
        log.info("%s: %d sentences for language models (no dev or test sentence)", out / LM_TEXT, len(sentences))
    if hasattr(CORPORA[name], "text_sources"):
        for file_name, sentences in CORPORA[name].text_sources(src, splits).items():
            (out / file_name).write_text("".join(s + "\n" for s in sentences), encoding="utf-8")
            log.info("%s: %d sentences to synthesize", out / file_name, len(sentences))
    return counts


def download_corpus(
    name: str, out: str | Path, url: str | None = None, subsets: list[str] | None = None, mirror: str | None = None
) -> Path:
    """Fetch a corpus into ``out`` from ``url``, or from its public address(es); returns its root.

    ``subsets`` and ``mirror`` apply to corpora published as several archives (LibriSpeech).
    """
    if name not in CORPORA:
        raise AsrError(f"unknown corpus {name!r} (known: {', '.join(sorted(CORPORA))})")
    module = CORPORA[name]
    several = hasattr(module, "download_urls")
    if (subsets or mirror) and not several:
        raise AsrError(f"corpus {name!r} is a single archive: --subset and --mirror do not apply")
    if url:
        return fetch(url, out)
    if several:
        options = {"mirror": mirror} if mirror else {}
        return fetch_many(module.download_urls(subsets or module.DEFAULT_SUBSETS, **options), out)
    if not module.DOWNLOAD_URL:
        raise AsrError(f"corpus {name!r} has no public download address; use --url or --src")
    return fetch(module.DOWNLOAD_URL, out)
