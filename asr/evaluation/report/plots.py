"""Figures drawn with matplotlib's object-oriented API on the Agg canvas (no display, no pyplot
state): report plots returned as PNG bytes for embedding, training curves written to a file."""

from __future__ import annotations

import io
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FormatStrFormatter, LogLocator, NullFormatter

from asr.evaluation.scoring import Confusions, LengthBin

_DPI = 144  # pixels per inch of embedded PNGs (sharp on high-density screens, shown at half size)
_BAR = "#4c72b0"
_OTHER = "#dd8452"


def _figure(width: float, height: float, columns: int = 1) -> tuple[Figure, list]:
    figure = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(1, columns, squeeze=False)[0]
    return figure, list(axes)


def figure_png(figure: Figure) -> bytes:
    """The figure as PNG bytes."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=_DPI)
    return buffer.getvalue()


def _label_bars(axis, bars, labels: Sequence[str]) -> None:
    axis.bar_label(bars, labels=labels, padding=2, fontsize=8)
    axis.margins(y=0.22)


def speaker_wer_figure(per_speaker: dict[str, dict]) -> Figure:
    """Bars of pooled WER (%) per speaker, annotated with the speaker's reference word count."""
    figure, (axis,) = _figure(max(4.0, 0.6 * len(per_speaker) + 2), 3.0)
    names = list(per_speaker)
    bars = axis.bar(names, [100 * row["wer"] for row in per_speaker.values()], color=_BAR)
    _label_bars(axis, bars, [f"{100 * row['wer']:.1f}%\n{row['num_words']} w" for row in per_speaker.values()])
    axis.set_ylabel("WER (%)")
    axis.set_title("WER by speaker")
    axis.tick_params(axis="x", rotation=30 if len(names) > 6 else 0)
    return figure


def length_wer_figure(unit: str, bins: Sequence[LengthBin]) -> Figure:
    """Bars of pooled WER (%) per utterance-length bin, annotated with the utterance count."""
    figure, (axis,) = _figure(max(4.0, 0.75 * len(bins) + 1.5), 3.0)
    bars = axis.bar([b.label for b in bins], [100 * b.wer for b in bins], color=_BAR)
    _label_bars(axis, bars, [f"{100 * b.wer:.1f}%\n{b.num_utterances} utt" for b in bins])
    axis.set_ylabel("WER (%)")
    axis.set_xlabel("reference length" if unit == "words" else "duration")
    axis.set_title(f"WER by utterance length ({unit})")
    axis.tick_params(axis="x", labelsize=8)
    return figure


def confusions_figure(confusions: Confusions) -> Figure:
    """Three horizontal bar charts: most frequent substitutions, deletions and insertions."""
    panels = [
        (
            "substitutions (ref \u2192 hyp)",
            [f"{r} \u2192 {h}" for (r, h), _ in confusions.substitutions],
            [n for _, n in confusions.substitutions],
        ),
        ("deletions", [w for w, _ in confusions.deletions], [n for _, n in confusions.deletions]),
        ("insertions", [w for w, _ in confusions.insertions], [n for _, n in confusions.insertions]),
    ]
    rows = max([len(labels) for _, labels, _ in panels] + [1])
    figure, axes = _figure(11.0, 0.8 + 0.28 * rows, columns=3)
    for axis, (title, labels, counts) in zip(axes, panels):
        axis.set_title(f"most frequent {title}", fontsize=10)
        if not labels:
            axis.text(0.5, 0.5, "none", ha="center", va="center", transform=axis.transAxes, color="gray")
            axis.set_axis_off()
            continue
        bars = axis.barh(labels[::-1], counts[::-1], color=_BAR)
        axis.bar_label(bars, padding=2, fontsize=8)
        axis.set_ylim(-0.6, rows - 0.4)
        axis.margins(x=0.15)
        axis.tick_params(axis="y", labelsize=8)
        axis.xaxis.get_major_locator().set_params(integer=True)
    return figure


def speaker_comparison_figure(
    per_speaker_a: dict[str, dict], per_speaker_b: dict[str, dict], names: tuple[str, str]
) -> Figure:
    """Grouped bars: WER (%) of system A and system B for each speaker of either."""
    speakers = sorted(set(per_speaker_a) | set(per_speaker_b))
    figure, (axis,) = _figure(max(4.0, 0.9 * len(speakers) + 2), 3.0)
    positions = range(len(speakers))
    for offset, table, name, colour in ((-0.2, per_speaker_a, names[0], _BAR), (0.2, per_speaker_b, names[1], _OTHER)):
        values = [100 * table[s]["wer"] if s in table else 0.0 for s in speakers]
        bars = axis.bar([p + offset for p in positions], values, width=0.4, label=name, color=colour)
        axis.bar_label(bars, labels=[f"{v:.1f}" for v in values], padding=2, fontsize=7)
    axis.set_xticks(list(positions), speakers)
    axis.set_ylabel("WER (%)")
    axis.set_title("WER by speaker")
    axis.margins(y=0.15)
    axis.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return figure


def plot_training_curves(history: Sequence[dict], path: str | Path) -> None:
    """Write a PNG of train/dev CTC loss and dev WER per epoch (``history.json`` records).

    The file is written beside ``path`` and renamed into place, so a viewer never reads half a PNG.
    """
    path = Path(path)
    epochs = [record["epoch"] for record in history]
    figure, (loss_axis, wer_axis) = _figure(9.0, 3.4, columns=2)
    loss_axis.plot(epochs, [r["train_loss"] for r in history], marker=".", label="train")
    loss_axis.plot(epochs, [r["dev_loss"] for r in history], marker=".", label="dev")
    loss_axis.set_xlabel("epoch")
    loss_axis.set_ylabel("CTC loss (log scale)")
    loss_axis.set_yscale("log")
    loss_axis.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    loss_axis.yaxis.set_major_formatter(FormatStrFormatter("%g"))
    loss_axis.yaxis.set_minor_formatter(NullFormatter())
    loss_axis.set_title("loss")
    loss_axis.legend()
    wers = [100 * r["dev_wer"] for r in history]
    wer_axis.plot(epochs, wers, marker=".", color=_OTHER)
    best = min(range(len(wers)), key=lambda i: (wers[i], history[i]["dev_loss"]))
    wer_axis.scatter(
        [epochs[best]], [wers[best]], color="black", zorder=3, label=f"best: epoch {epochs[best]}, {wers[best]:.2f}%"
    )
    wer_axis.set_xlabel("epoch")
    wer_axis.set_ylabel("dev WER (%)")
    wer_axis.set_title("dev WER")
    wer_axis.legend()
    for axis in (loss_axis, wer_axis):
        axis.grid(alpha=0.3)
        axis.xaxis.get_major_locator().set_params(integer=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as out:
            figure.savefig(out, format="png", dpi=100)
        os.chmod(temporary, 0o644)  # mkstemp creates 0600; a plot is for anyone to view
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
