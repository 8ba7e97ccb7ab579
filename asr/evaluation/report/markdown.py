"""Evaluation reports: ``summary.json`` for machines, ``report.md`` and ``report.html`` for people,
``alignments.txt`` (sclite-style) and ``hyp.jsonl`` (one decoded line per utterance)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from asr.evaluation.bootstrap import DEFAULT_SAMPLES, DEFAULT_SEED, wer_interval
from asr.evaluation.report.html import decoder_label, evaluation_html
from asr.evaluation.scoring import (
    ScoredUtterance,
    UtteranceScore,
    confusions,
    per_speaker,
    pooled_counts,
    score_utterances,
)
from asr.utils.atomic import write_text_atomic
from asr.utils.errors import AsrError

__all__ = ["ScoredUtterance", "write_reports", "read_summaries", "results_table"]

POOLING_NOTE = (
    "WER is pooled: all word errors divided by all reference words (never a mean of per-utterance "
    "rates), after the toolkit's text normalisation (`asr.data.text.normalize_text`: case, punctuation, "
    "digits) of both sides."
)


def summarize(
    scores: Sequence[UtteranceScore], extra: dict, samples: int = DEFAULT_SAMPLES, seed: int = DEFAULT_SEED
) -> dict:
    """The ``summary.json`` contents: pooled counts, bootstrap interval, per-speaker rows, ``extra``."""
    counts = pooled_counts(scores)
    low, high = wer_interval([s.errors for s in scores], [s.num_words for s in scores], samples, seed)
    return {
        **counts.__dict__,
        "wer_ci95": [low, high],
        "bootstrap": {"samples": samples, "seed": seed, "resampled": "utterances"},
        "per_speaker": per_speaker(scores),
        **extra,
    }


def write_reports(
    out_dir: Path, utterances: Sequence[ScoredUtterance], failed: dict[str, str], extra: dict, title: str
) -> dict:
    """Score ``utterances`` and write ``summary.json``, ``report.md``, ``report.html``,
    ``alignments.txt`` and ``hyp.jsonl`` into ``out_dir``; returns the summary.

    ``failed`` maps the audio path of each utterance that was not scored to the reason;
    ``extra`` (decoding settings, timing, provenance) is merged into the summary.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    scores = score_utterances(utterances)
    summary = summarize(scores, extra)
    # every file is rendered before any is written, and each is replaced atomically, summary.json
    # last: a failure leaves an earlier run's files whole (never half a file), and a summary.json
    # newer than the reports beside it is never seen
    files = {
        "report.md": markdown_report(summary, scores, failed, title),
        "alignments.txt": alignments_text(scores, title),
        "hyp.jsonl": hypotheses_text(utterances),
        "report.html": evaluation_html(summary, scores, failed, title, folder=out_dir),
        "summary.json": json.dumps(summary, indent=2, default=str) + "\n",
    }
    for name, text in files.items():
        write_text_atomic(out_dir / name, text)
    return summary


def percent(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.2f} %"


def alignment_block(score: UtteranceScore) -> list[str]:
    """sclite's ``pralign`` layout for one utterance: correct words in lower case, errors in
    upper case, ``***`` where one side has no word, and an ``Eval`` line of S/D/I marks."""
    ref, hyp, marks = [], [], []
    for word in score.alignment:
        if word.op == "C":
            r, h, mark = word.reference, word.hypothesis, ""
        else:
            r = word.reference.upper() or "***"
            h = word.hypothesis.upper() or "***"
            mark = word.op
        width = max(len(r), len(h), 1)
        ref.append(r.ljust(width))
        hyp.append(h.ljust(width))
        marks.append(mark.ljust(width))
    lines = [f"id: ({score.key})"]
    if score.speaker:
        lines.append(f"Speaker: {score.speaker}")
    lines += [
        f"Scores: (#C #S #D #I) {score.hits} {score.substitutions} {score.deletions} {score.insertions}",
        ("REF:  " + " ".join(ref)).rstrip(),
        ("HYP:  " + " ".join(hyp)).rstrip(),
        ("Eval: " + " ".join(marks)).rstrip(),
    ]
    return lines


def write_alignments(path: Path, scores: Sequence[UtteranceScore], title: str) -> None:
    """``alignments.txt``: every utterance, in manifest order, as an sclite-style block (atomically)."""
    write_text_atomic(path, alignments_text(scores, title))


def alignments_text(scores: Sequence[UtteranceScore], title: str) -> str:
    """The contents of ``alignments.txt``."""
    lines = [
        f"# {title}: word alignments (sclite pralign style)",
        "# lower case: correct; UPPER CASE: error; ***: no word on that side; Eval: S substitution, "
        "D deletion, I insertion",
        "",
    ]
    for score in scores:
        lines += alignment_block(score) + [""]
    return "\n".join(lines)


def _table(header: list[str], rows: list[list]) -> list[str]:
    return [
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---" for _ in header) + "|",
        *("| " + " | ".join(str(cell) for cell in row) + " |" for row in rows),
        "",
    ]


def markdown_report(
    summary: dict, scores: Sequence[UtteranceScore], failed: dict[str, str], title: str, worst: int = 20
) -> str:
    """``report.md``: headline numbers with the bootstrap interval, settings, per-speaker table,
    top confusions, utterances not scored, then the worst utterances aligned."""
    low, high = summary["wer_ci95"]
    lines = [f"# {title}", ""]
    lines += _table(
        ["WER", "95 % CI", "CER", "sentence errors", "utterances", "words", "substitutions", "deletions", "insertions"],
        [
            [
                percent(summary["wer"]),
                f"{100 * low:.2f}-{100 * high:.2f} %",
                percent(summary["cer"]),
                percent(summary["sentence_error_rate"]),
                summary["num_utterances"],
                summary["num_words"],
                summary["substitutions"],
                summary["deletions"],
                summary["insertions"],
            ]
        ],
    )
    bootstrap = summary["bootstrap"]
    lines += [
        POOLING_NOTE + f" The interval is a percentile bootstrap over utterances "
        f"({bootstrap['samples']} samples, seed {bootstrap['seed']}).",
        "",
        f"- manifest: `{summary.get('manifest', '')}`",
        f"- model: `{summary.get('model', '')}`",
        f"- decoder: {decoder_label(summary.get('decoder'))}",
    ]
    if summary.get("decode_seconds") is not None:
        rtf = summary.get("real_time_factor")
        lines.append(
            f"- decoding: {summary['decode_seconds']:.2f} s, real-time factor {rtf if rtf is not None else 'n/a'}"
        )
    lines.append("")
    if summary["per_speaker"]:
        lines += ["## Per speaker", ""]
        lines += _table(
            ["speaker", "utterances", "words", "WER", "CER", "S", "D", "I"],
            [
                [
                    name,
                    row["num_utterances"],
                    row["num_words"],
                    percent(row["wer"]),
                    percent(row["cer"]),
                    row["substitutions"],
                    row["deletions"],
                    row["insertions"],
                ]
                for name, row in summary["per_speaker"].items()
            ],
        )
    top = confusions(scores)
    lines += ["## Most frequent errors", ""]
    lines += _table(
        ["substitution (ref → hyp)", "count"], [[f"{r} → {h}", n] for (r, h), n in top.substitutions] or [["none", ""]]
    )
    lines += _table(["deletion", "count"], [[w, n] for w, n in top.deletions] or [["none", ""]])
    lines += _table(["insertion", "count"], [[w, n] for w, n in top.insertions] or [["none", ""]])
    if failed:
        lines += [f"## Not scored ({len(failed)})", ""]
        lines += [f"- `{path}`: {reason}" for path, reason in sorted(failed.items())]
        lines.append("")
    wrong = sorted((s for s in scores if s.errors), key=lambda s: (-s.errors, s.key))[:worst]
    lines += [f"## Worst utterances ({len(wrong)} shown; all are in alignments.txt)", ""]
    for score in wrong:
        lines += ["```", *alignment_block(score), "```", ""]
    return "\n".join(lines)


def write_hypotheses(path: Path, utterances: Sequence[ScoredUtterance]) -> None:
    """``hyp.jsonl``: one manifest-like line per utterance with the hypothesis and the reference
    (written atomically)."""
    write_text_atomic(path, hypotheses_text(utterances))


def hypotheses_text(utterances: Sequence[ScoredUtterance]) -> str:
    """The contents of ``hyp.jsonl``."""
    lines = []
    for utt in utterances:
        row = {"id": utt.key, "text": utt.hypothesis, "reference": utt.reference, "duration": utt.duration}
        if utt.speaker:
            row["speaker"] = utt.speaker
        if utt.audio:
            row["audio_filepath"], row["offset"] = utt.audio, utt.offset
        lines.append(json.dumps(row, ensure_ascii=False) + "\n")
    return "".join(lines)


def read_summaries(folders: list[str | Path]) -> dict[str, dict]:
    """The ``summary.json`` of each evaluation folder, by folder; an AsrError names one that cannot be read."""
    summaries = {}
    for folder in folders:
        path = Path(folder) / "summary.json"
        try:
            summaries[str(folder)] = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as err:
            raise AsrError(f"{path}: cannot read evaluation summary ({err})") from None
    return summaries


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
            + " | ".join(
                str(sum(s[k] for s in summaries.values())) for k in ("substitutions", "deletions", "insertions")
            )
            + " |"
        )
    return "\n".join(lines)
