"""Evaluation reports: ``summary.json`` for machines, ``report.md`` for people."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from asr.metrics import ErrorCounts, alignment_text, utterance_errors


@dataclass
class ScoredUtterance:
    key: str  # utterance id (or file stem)
    reference: str  # normalised reference
    hypothesis: str  # normalised hypothesis
    speaker: str | None  # speaker, when the manifest names one


def write_summary(path: Path, counts: ErrorCounts, extra: dict) -> dict:
    """``summary.json``: the :class:`ErrorCounts` fields plus ``extra``; returns what was written."""
    summary = {**counts.__dict__, **extra}
    path.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return summary


def write_markdown(
    path: Path,
    counts: ErrorCounts,
    utterances: list[ScoredUtterance],
    failed: dict[str, str],
    title: str,
    worst: int = 20,
) -> None:
    """``report.md``: headline numbers, S/D/I, failures, then the worst utterances aligned."""
    scored = []
    for utt in utterances:
        errors, words = utterance_errors(utt.reference, utt.hypothesis)
        scored.append((errors, words, utt))
    scored.sort(key=lambda item: (-item[0], item[2].key))
    lines = [
        f"# {title}",
        "",
        "| WER | CER | utterances | words | substitutions | deletions | insertions | sentence errors |",
        "|---|---|---|---|---|---|---|---|",
        f"| {100 * counts.wer:.2f} % | {100 * counts.cer:.2f} % | {counts.num_utterances} | "
        f"{counts.num_words} | {counts.substitutions} | {counts.deletions} | {counts.insertions} | "
        f"{100 * counts.sentence_error_rate:.1f} % |",
        "",
        "WER is pooled: all word errors divided by all reference words, after the toolkit's "
        "text normalisation (`asr.text.normalize_text`) of both sides.",
        "",
    ]
    if failed:
        lines += [f"## Not scored ({len(failed)})", ""]
        lines += [f"- `{path}`: {reason}" for path, reason in sorted(failed.items())]
        lines.append("")
    wrong = [item for item in scored if item[0] > 0][:worst]
    lines += [f"## Worst utterances ({len(wrong)} shown)", ""]
    for errors, words, utt in wrong:
        speaker = f", speaker {utt.speaker}" if utt.speaker else ""
        lines += [f"### {utt.key} ({errors} errors / {words} words{speaker})", "", "```"]
        lines += [alignment_text(utt.reference, utt.hypothesis), "```", ""]
    path.write_text("\n".join(lines), encoding="utf-8")


def write_hypotheses(path: Path, utterances: list[ScoredUtterance]) -> None:
    """``hyp.jsonl``: one line per utterance with the reference and the hypothesis."""
    with path.open("w", encoding="utf-8") as out:
        for utt in utterances:
            row = {"id": utt.key, "text": utt.hypothesis, "reference": utt.reference}
            if utt.speaker:
                row["speaker"] = utt.speaker
            out.write(json.dumps(row, ensure_ascii=False) + "\n")


def decoder_label(decoder: dict | str | None) -> str:
    """``greedy``, ``beam 50``, ``beam 50 + LM (weight 0.5, word score 1)``, from a summary's decoder."""
    if not isinstance(decoder, dict) or decoder.get("kind") != "beam":
        return "greedy"
    label = f"beam {decoder['beam_size']}" + (" + lexicon" if decoder.get("lexicon") else "")
    if decoder.get("lm"):
        label += f" + LM (weight {decoder['lm_weight']:g}, word score {decoder['word_score']:g})"
    return label


def results_table(summaries: dict[str, dict], pooled: bool = True) -> str:
    """A Markdown table of several ``summary.json`` contents, with a pooled total row if ``pooled``."""
    lines = [
        "| evaluation | decoder | utterances | words | WER | CER | S | D | I |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, s in summaries.items():
        lines.append(
            f"| {name} | {decoder_label(s.get('decoder'))} | {s['num_utterances']} | {s['num_words']} | "
            f"{100 * s['wer']:.2f} % | {100 * s['cer']:.2f} % | {s['substitutions']} | {s['deletions']} | "
            f"{s['insertions']} |"
        )
    if pooled and len(summaries) > 1:
        words = sum(s["num_words"] for s in summaries.values())
        errors = sum(s["substitutions"] + s["deletions"] + s["insertions"] for s in summaries.values())
        lines.append(
            f"| **pooled** | | {sum(s['num_utterances'] for s in summaries.values())} | {words} | "
            f"**{100 * errors / words:.2f} %** | | "
            + " | ".join(str(sum(s[k] for s in summaries.values())) for k in ("substitutions", "deletions", "insertions"))
            + " |"
        )
    return "\n".join(lines)
