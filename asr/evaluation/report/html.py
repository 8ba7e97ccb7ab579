"""Self-contained HTML pages (inline CSS, inline JavaScript, plots as base64 PNG; nothing fetched
from the network) for one evaluation and for the comparison of two."""

from __future__ import annotations

import base64
import datetime
import json
import os
from collections.abc import Sequence
from html import escape
from pathlib import Path
from urllib.parse import quote

from asr import __version__
from asr.evaluation.report.plots import (
    confusions_figure,
    figure_png,
    length_wer_figure,
    speaker_comparison_figure,
    speaker_wer_figure,
)
from asr.evaluation.scoring import UtteranceScore, confusions, wer_by_length
from asr.utils.atomic import write_text_atomic

_CSS = """
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #222; margin: 0 auto;
       max-width: 1200px; padding: 0 20px 40px; }
h1 { font-size: 1.6em; margin: 24px 0 4px; } h2 { font-size: 1.25em; margin-top: 32px; border-bottom: 1px solid #ddd; }
.meta { color: #666; font-size: 0.9em; margin: 0 0 16px; word-break: break-all; }
.cards { display: flex; flex-wrap: wrap; gap: 10px; }
.card { border: 1px solid #ddd; border-radius: 6px; padding: 8px 14px; min-width: 110px; background: #fafafa; }
.card .label { color: #666; font-size: 0.8em; text-transform: uppercase; letter-spacing: 0.04em; }
.card .value { font-size: 1.5em; font-weight: 600; }
.card.main .value { font-size: 2.1em; color: #1a4d8f; }
.card .sub { color: #666; font-size: 0.8em; }
.note { color: #555; font-size: 0.9em; }
.plots img { max-width: 100%; height: auto; display: block; margin: 8px 0; }
.plots { display: flex; flex-wrap: wrap; gap: 8px 24px; align-items: flex-start; }
table { border-collapse: collapse; font-size: 0.9em; margin: 8px 0; }
th, td { border-bottom: 1px solid #e5e5e5; padding: 4px 8px; text-align: left; vertical-align: top; }
td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; }
table.sortable th { cursor: pointer; user-select: none; background: #f2f2f2; position: sticky; top: 0; }
table.sortable th:hover { background: #e6e6e6; }
th.asc::after { content: " \\25B2"; font-size: 0.7em; } th.desc::after { content: " \\25BC"; font-size: 0.7em; }
.controls { display: flex; flex-wrap: wrap; gap: 12px; align-items: center; margin: 8px 0; }
.controls input { width: 240px; }
.count { color: #666; }
.align { font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace; font-size: 0.95em; }
.align span { padding: 0 2px; border-radius: 3px; }
.align .sub { background: #fde2c5; } .align .del { background: #f8c9c9; } .align .ins { background: #cfe8cf; }
.align del { color: #b02020; } .align ins { text-decoration: none; font-weight: 600; }
.align .del del { text-decoration: line-through; }
.legend span { margin-right: 10px; }
.failed li { word-break: break-all; }
.better { color: #17803a; font-weight: 600; } .worse { color: #b02020; font-weight: 600; }
details pre { background: #f6f6f6; padding: 8px; overflow-x: auto; font-size: 0.85em; }
"""

_JS = """
(function () {
  function sortBy(th) {
    var table = th.closest('table'), body = table.tBodies[0];
    var index = Array.prototype.indexOf.call(th.parentNode.children, th);
    var numeric = th.classList.contains('n');
    var dir = th.classList.contains('asc') ? 'desc' : 'asc';
    table.querySelectorAll('th').forEach(function (h) { h.classList.remove('asc', 'desc'); });
    th.classList.add(dir);
    function key(row) {
      var cell = row.cells[index], v = cell.hasAttribute('data-v') ? cell.getAttribute('data-v') : cell.textContent;
      return numeric ? parseFloat(v) : v.toLowerCase();
    }
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = key(a), y = key(b);
      return (x < y ? -1 : x > y ? 1 : 0) * (dir === 'asc' ? 1 : -1);
    });
    rows.forEach(function (row) { body.appendChild(row); });
  }
  document.querySelectorAll('table.sortable th').forEach(function (th) {
    th.title = 'click to sort';
    th.addEventListener('click', function () { sortBy(th); });
  });
  var table = document.getElementById('utterances');
  if (!table) return;
  var kind = document.getElementById('kind'), speaker = document.getElementById('speaker');
  var search = document.getElementById('search'), count = document.getElementById('shown');
  var rows = Array.prototype.slice.call(table.tBodies[0].rows);
  function apply() {
    var tag = kind.value, who = speaker ? speaker.value : '', text = search.value.toLowerCase(), shown = 0;
    rows.forEach(function (row) {
      var ok = (tag === 'all' || (' ' + row.getAttribute('data-tags') + ' ').indexOf(' ' + tag + ' ') >= 0)
        && (!who || row.getAttribute('data-speaker') === who)
        && (!text || row.textContent.toLowerCase().indexOf(text) >= 0);
      row.hidden = !ok;
      if (ok) shown += 1;
    });
    count.textContent = shown + ' of ' + rows.length + ' utterances shown';
  }
  [kind, speaker, search].forEach(function (el) { if (el) el.addEventListener('input', apply); });
  // a link ending in #errors (or any other "show" choice) opens the page with that filter
  var wanted = decodeURIComponent(location.hash.slice(1));
  if (Array.prototype.some.call(kind.options, function (o) { return o.value === wanted; })) kind.value = wanted;
  apply();
})();
"""


def _page(title: str, body: list[str]) -> str:
    generated = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en"><head><meta charset="utf-8">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f"<title>{escape(title)}</title><style>{_CSS}</style></head><body>",
            *body,
            f'<p class="note">Written by asr {escape(__version__)} on {generated}. '
            "This page is self-contained: it needs no network access.</p>",
            f"<script>{_JS}</script>",
            "</body></html>",
        ]
    )


def _card(label: str, value: str, sub: str = "", main: bool = False, ident: str = "") -> str:
    ident = f' id="{ident}"' if ident else ""
    sub = f'<div class="sub">{escape(sub)}</div>' if sub else ""
    return (
        f'<div class="card{" main" if main else ""}"><div class="label">{escape(label)}</div>'
        f'<div class="value"{ident}>{escape(value)}</div>{sub}</div>'
    )


def decoder_label(decoder: dict | str | None) -> str:
    """``greedy``, ``beam 50``, ``beam 50 + LM (weight 0.5, word score 1)``, from a summary's decoder."""
    if not isinstance(decoder, dict) or decoder.get("kind") != "beam":
        return "greedy"
    label = f"beam {decoder['beam_size']}" + (" + lexicon" if decoder.get("lexicon") else "")
    if decoder.get("lm") and decoder.get("lm_weight"):
        label += f" + LM (weight {decoder['lm_weight']:g}, word score {decoder['word_score']:g})"
    elif decoder.get("word_score"):
        label += f" (word score {decoder['word_score']:g})"
    return label


def _percent(value: float) -> str:
    return f"{100 * value:.2f} %"


def _image(figure, alt: str) -> str:
    width = int(figure.get_figwidth() * 96)
    data = base64.b64encode(figure_png(figure)).decode("ascii")
    return f'<img alt="{escape(alt)}" width="{width}" src="data:image/png;base64,{data}">'


def alignment_html(score: UtteranceScore) -> str:
    """The utterance as one line: correct words plain, substitutions as ~~ref~~ hyp, deletions
    struck through, insertions in bold, each error on a coloured background."""
    parts = []
    for word in score.alignment:
        ref, hyp = escape(word.reference), escape(word.hypothesis)
        if word.op == "C":
            parts.append(ref)
        elif word.op == "S":
            parts.append(f'<span class="sub" title="substitution"><del>{ref}</del> <ins>{hyp}</ins></span>')
        elif word.op == "D":
            parts.append(f'<span class="del" title="deletion"><del>{ref}</del></span>')
        else:
            parts.append(f'<span class="ins" title="insertion"><ins>{hyp}</ins></span>')
    return f'<span class="align">{" ".join(parts)}</span>'


_LEGEND = (
    '<p class="legend align"><span class="sub"><del>ref</del> <ins>hyp</ins></span> substitution '
    '<span class="del"><del>ref</del></span> deletion <span class="ins"><ins>hyp</ins></span> insertion</p>'
)


def _table(headers: list[tuple[str, bool]], rows: list[str], ident: str = "", sortable: bool = True) -> str:
    """``headers``: (title, numeric); ``rows``: ready ``<tr>`` strings."""
    head = "".join(f'<th class="n">{escape(t)}</th>' if numeric else f"<th>{escape(t)}</th>" for t, numeric in headers)
    ident = f' id="{ident}"' if ident else ""
    cls = ' class="sortable"' if sortable else ""
    return f"<table{ident}{cls}><thead><tr>{head}</tr></thead><tbody>\n" + "\n".join(rows) + "\n</tbody></table>"


def _num(value, text: str | None = None) -> str:
    return f'<td class="n" data-v="{value}">{escape(text if text is not None else str(value))}</td>'


def _controls(options: list[tuple[str, str]], speakers: Sequence[str], selected: str = "all") -> str:
    kinds = "".join(
        f'<option value="{v}"{" selected" if v == selected else ""}>{escape(label)}</option>' for v, label in options
    )
    parts = [f'<label>show <select id="kind">{kinds}</select></label>']
    if speakers:
        choices = "".join(f'<option value="{escape(s)}">{escape(s)}</option>' for s in speakers)
        parts.append(f'<label>speaker <select id="speaker"><option value="">all</option>{choices}</select></label>')
    parts.append('<label>search <input id="search" type="search" placeholder="id, speaker or word"></label>')
    parts.append('<span class="count" id="shown"></span>')
    return '<div class="controls">' + "".join(parts) + "</div>"


def _failed_section(failed: dict[str, str]) -> list[str]:
    if not failed:
        return []
    items = "".join(
        f"<li><code>{escape(path)}</code>: {escape(reason)}</li>" for path, reason in sorted(failed.items())
    )
    return [
        f'<h2 id="not-scored">Not scored ({len(failed)})</h2>',
        '<p class="note">These utterances could not be decoded or their reference normalises to '
        "nothing; they are left out of every number on this page.</p>",
        f'<ul class="failed">{items}</ul>',
    ]


def audio_player(score: UtteranceScore, folder: Path | None) -> str:
    """An ``<audio>`` element playing the utterance: its file by a path relative to the report's
    ``folder`` (so the page and the audio can move together), a media fragment for a segment."""
    if not score.audio:
        return "<td></td>"
    path = Path(score.audio)
    try:
        source = Path(os.path.relpath(path, folder)).as_posix() if folder is not None else path.as_uri()
    except ValueError:  # another drive (Windows): only an absolute address reaches it
        source = path.resolve().as_uri()
    source = quote(source, safe="/:")
    if score.offset:
        source += f"#t={score.offset:.3f},{score.offset + score.duration:.3f}"
    return f'<td><audio controls preload="none" src="{escape(source)}"></audio></td>'


def evaluation_html(
    summary: dict, scores: Sequence[UtteranceScore], failed: dict[str, str], title: str, folder: Path | None = None
) -> str:
    """The report page of one evaluation (see :func:`write_evaluation_html`); ``folder``: where the
    page is written (audio players link relative to it)."""
    low, high = summary["wer_ci95"]
    bootstrap = summary["bootstrap"]
    cards = [
        _card("WER", _percent(summary["wer"]), f"95 % CI {100 * low:.2f}-{100 * high:.2f} %", main=True, ident="wer"),
        _card("CER", _percent(summary["cer"]), ident="cer"),
        _card("sentence errors", _percent(summary["sentence_error_rate"])),
        _card("utterances", str(summary["num_utterances"]), f"{len(failed)} not scored" if failed else ""),
        _card("reference words", str(summary["num_words"])),
        _card(
            "sub / del / ins",
            f"{summary['substitutions']} / {summary['deletions']} / {summary['insertions']}",
            "word errors by kind",
        ),
    ]
    if summary.get("decode_seconds") is not None:
        rtf = summary.get("real_time_factor")
        cards.append(
            _card(
                "decoding",
                f"{summary['decode_seconds']:.1f} s",
                f"real-time factor {rtf:.4f}" if rtf is not None else "",
            )
        )
    meta = " · ".join(
        f"{label}: {escape(text)}"
        for label, text in (
            ("manifest", str(summary.get("manifest") or "")),
            ("model", str(summary.get("model") or "")),
            ("decoder", decoder_label(summary.get("decoder"))),
        )
        if text
    )
    body = [
        f"<h1>{escape(title)}</h1>",
        f'<p class="meta">{meta}</p>',
        '<div class="cards">' + "".join(cards) + "</div>",
        f'<p class="note">WER is pooled: all word errors divided by all reference words (never a mean of '
        f"per-utterance rates), after the same text normalisation of reference and hypothesis (case, "
        f"punctuation and digits). The 95 % interval is a percentile bootstrap over utterances "
        f"({bootstrap['samples']} samples, seed {bootstrap['seed']}).</p>",
    ]
    unit, bins = wer_by_length(scores)
    plots = []
    if len(summary["per_speaker"]) > 1:
        plots.append(_image(speaker_wer_figure(summary["per_speaker"]), "WER by speaker"))
    plots.append(_image(length_wer_figure(unit, bins), "WER by utterance length"))
    body += [
        '<h2>Plots</h2><div class="plots">' + "".join(plots) + "</div>",
        '<div class="plots">' + _image(confusions_figure(confusions(scores)), "most frequent errors") + "</div>",
    ]
    speakers = list(summary["per_speaker"])
    if speakers:
        rows = [
            f"<tr><td>{escape(name)}</td>{_num(row['num_utterances'])}{_num(row['num_words'])}"
            f"{_num(row['wer'], _percent(row['wer']))}{_num(row['cer'], _percent(row['cer']))}"
            f"{_num(row['substitutions'])}{_num(row['deletions'])}{_num(row['insertions'])}</tr>"
            for name, row in summary["per_speaker"].items()
        ]
        body += [
            "<h2>Per speaker</h2>",
            _table(
                [
                    ("speaker", False),
                    ("utterances", True),
                    ("words", True),
                    ("WER", True),
                    ("CER", True),
                    ("S", True),
                    ("D", True),
                    ("I", True),
                ],
                rows,
                ident="speakers",
            ),
        ]
    body += _failed_section(failed)
    rows = []
    for score in scores:
        tags = ["errors" if score.errors else "correct"]
        tags += [
            tag for tag, n in (("sub", score.substitutions), ("del", score.deletions), ("ins", score.insertions)) if n
        ]
        rows.append(
            f'<tr data-tags="{" ".join(tags)}" data-speaker="{escape(score.speaker or "")}">'
            f"<td>{escape(score.key)}</td><td>{escape(score.speaker or '')}</td>"
            f"{_num(score.duration, f'{score.duration:.2f}')}{_num(score.num_words)}{_num(score.errors)}"
            f"{_num(score.substitutions)}{_num(score.deletions)}{_num(score.insertions)}"
            f"{_num(score.wer, _percent(score.wer))}{audio_player(score, folder)}<td>{alignment_html(score)}</td></tr>"
        )
    body += [
        f"<h2>Utterances ({len(scores)})</h2>",
        _LEGEND,
        _controls(
            [
                ("all", "all"),
                ("errors", "with errors"),
                ("sub", "with substitutions"),
                ("del", "with deletions"),
                ("ins", "with insertions"),
                ("correct", "correct"),
            ],
            speakers if len(speakers) > 1 else [],
        ),
        _table(
            [
                ("id", False),
                ("speaker", False),
                ("seconds", True),
                ("words", True),
                ("errors", True),
                ("S", True),
                ("D", True),
                ("I", True),
                ("WER", True),
                ("audio", False),
                ("alignment", False),
            ],
            rows,
            ident="utterances",
        ),
    ]
    if summary.get("provenance"):
        origin = summary["provenance"]
        body.append(
            '<p class="meta" id="provenance">'
            + " · ".join(
                f"{escape(str(key))} {escape(str(value))}" for key, value in origin.items() if value is not None
            )
            + "</p>"
        )
    settings = {k: summary.get(k) for k in ("decoder", "model_settings", "bootstrap") if k in summary}
    body.append(
        "<details><summary>Model and decoder settings</summary><pre>"
        + escape(json.dumps(settings, indent=2, default=str))
        + "</pre></details>"
    )
    return _page(title, body)


def write_evaluation_html(
    path: Path, summary: dict, scores: Sequence[UtteranceScore], failed: dict[str, str], title: str
) -> None:
    """``report.html``: headline numbers, plots (WER by speaker and by length, top confusions),
    per-speaker table, utterances not scored, and every utterance aligned, sortable and filterable."""
    write_text_atomic(path, evaluation_html(summary, scores, failed, title, folder=path.parent))


def comparison_html(comparison) -> str:
    """The page comparing two evaluations of the same utterances (see :mod:`asr.evaluation.compare`)."""
    c = comparison
    a, b = c.name_a, c.name_b
    boot = c.bootstrap
    verdict = c.verdict()
    cards = [
        _card("WER A", _percent(c.counts_a.wer), a, ident="wer-a"),
        _card("WER B", _percent(c.counts_b.wer), b, ident="wer-b"),
        _card(
            "B - A",
            f"{100 * boot.difference:+.2f} pts",
            f"{100 * boot.confidence:.0f} % CI {100 * boot.low:+.2f} to {100 * boot.high:+.2f}",
            main=True,
            ident="difference",
        ),
        _card(
            "p-value",
            boot.p_text().replace("p = ", "").replace("p <= ", "\u2264 "),
            f"paired bootstrap, {boot.samples} samples",
            ident="p-value",
        ),
        _card("B better on", str(len(c.better)), "utterances"),
        _card("B worse on", str(len(c.worse)), "utterances"),
        _card("unchanged", str(len(c.pairs) - len(c.better) - len(c.worse)), "utterances"),
    ]
    body = [
        f"<h1>{escape(a)} vs {escape(b)}</h1>",
        f'<p class="meta">A: {escape(str(c.folder_a))} · B: {escape(str(c.folder_b))} · '
        f"{len(c.pairs)} utterances, {c.counts_a.num_words} reference words</p>",
        '<div class="cards">' + "".join(cards) + "</div>",
        f'<p id="verdict"><strong>{escape(verdict)}</strong></p>',
        f'<p class="note">Both WERs are pooled over the same {len(c.pairs)} utterances. The interval and the '
        f"p-value come from a paired bootstrap over utterances (seed {boot.seed}): each sample scores both "
        "systems on the same resampled utterances; the p-value is two-sided.</p>",
    ]
    for note in c.notes:
        body.append(f'<p class="note">{escape(note)}</p>')
    if c.per_speaker_a:
        body += [
            "<h2>Per speaker</h2>",
            '<div class="plots">'
            + _image(speaker_comparison_figure(c.per_speaker_a, c.per_speaker_b, (a, b)), "WER by speaker")
            + "</div>",
        ]
        rows = []
        for name in c.per_speaker_a:
            wa, wb = c.per_speaker_a[name]["wer"], c.per_speaker_b[name]["wer"]
            cls = "better" if wb < wa else "worse" if wb > wa else ""
            rows.append(
                f"<tr><td>{escape(name)}</td>{_num(c.per_speaker_a[name]['num_words'])}"
                f"{_num(wa, _percent(wa))}{_num(wb, _percent(wb))}"
                f'<td class="n {cls}" data-v="{wb - wa}">{100 * (wb - wa):+.2f}</td></tr>'
            )
        body.append(
            _table(
                [("speaker", False), ("words", True), ("WER A", True), ("WER B", True), ("B - A (pts)", True)],
                rows,
                ident="speakers",
            )
        )
    rows = []
    for score_a, score_b in c.pairs:
        change = score_b.errors - score_a.errors
        tag = "better" if change < 0 else "worse" if change > 0 else "same"
        tags = tag + (" changed" if score_a.hypothesis != score_b.hypothesis else "")
        rows.append(
            f'<tr data-tags="{tags}" data-speaker="{escape(score_a.speaker or "")}">'
            f"<td>{escape(score_a.key)}</td><td>{escape(score_a.speaker or '')}</td>{_num(score_a.num_words)}"
            f"{_num(score_a.errors)}{_num(score_b.errors)}"
            f'<td class="n {tag if change else ""}" data-v="{change}">{change:+d}</td>'
            f"<td>{alignment_html(score_a)}</td><td>{alignment_html(score_b)}</td></tr>"
        )
    speakers = list(c.per_speaker_a)
    body += [
        f"<h2>Utterances ({len(c.pairs)})</h2>",
        _LEGEND,
        _controls(
            [
                ("all", "all"),
                ("changed", "with a changed hypothesis"),
                ("better", "better in B"),
                ("worse", "worse in B"),
                ("same", "same error count"),
            ],
            speakers if len(speakers) > 1 else [],
            selected="changed",
        ),
        _table(
            [
                ("id", False),
                ("speaker", False),
                ("words", True),
                ("errors A", True),
                ("errors B", True),
                ("B - A", True),
                (f"A: {a}", False),
                (f"B: {b}", False),
            ],
            rows,
            ident="utterances",
        ),
    ]
    return _page(f"{a} vs {b}", body)
