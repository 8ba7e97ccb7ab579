"""Evaluation reports: pooled scoring, per-speaker sums, bootstrap intervals, the sclite-style
alignments, the HTML page in a real headless browser, and `asr compare`."""

import errno
import io
import json
import os
import platform
import re
import shutil
import subprocess
import sys
from pathlib import Path

import jiwer
import numpy as np
import pytest
import soundfile
import torch

from asr.data.dataset import Utterance, write_manifest
from asr.evaluation.bootstrap import paired_bootstrap, wer_interval
from asr.evaluation.compare import compare, write_comparison
from asr.evaluation.evaluate import evaluate
from asr.evaluation.metrics import error_counts
from asr.evaluation.report.html import comparison_html
from asr.evaluation.report.markdown import alignment_block, write_reports
from asr.evaluation.report.plots import plot_training_curves
from asr.evaluation.scoring import ScoredUtterance, per_speaker, pooled_counts, score_utterances, wer_by_length
from asr.model.checkpoint import load_model
from asr.utils.errors import AsrError

# (id, speaker, reference, hypothesis): 5 errors over 22 words. Pooled WER 5/22 = 22.7 %;
# the mean of per-utterance rates, (1/6 + 1/1 + 1/10 + 0 + 2/3) / 5 = 38.7 %, is what it must not be.
HAND_MADE = [
    ("a1", "alice", "the cat sat on the mat", "the cat sat on mat"),
    ("a2", "alice", "hello", "yellow"),
    ("b1", "bob", "a b c d e f g h i j", "a b c d e f g h i j k"),
    ("b2", "bob", "good morning", "good morning"),
    ("c1", "carol", "yes no yes", "no no yes yes"),
]


def hand_made(rows=HAND_MADE) -> list[ScoredUtterance]:
    return [ScoredUtterance(key, ref, hyp, speaker, 0.5 + len(ref) / 10) for key, speaker, ref, hyp in rows]


def asr(*args):
    return subprocess.run([sys.executable, "-m", "asr", *map(str, args)], capture_output=True, text=True, timeout=300)


def test_pooled_wer_equals_jiwer_where_averaging_would_differ():
    utterances = hand_made()
    references = [u.reference for u in utterances]
    hypotheses = [u.hypothesis for u in utterances]
    scores = score_utterances(utterances)
    counts = pooled_counts(scores)
    assert counts.wer == pytest.approx(jiwer.wer(references, hypotheses)) == pytest.approx(5 / 22)
    assert counts.cer == pytest.approx(jiwer.cer(references, hypotheses))
    assert counts == error_counts(references, hypotheses)  # every field, hits and sentence errors included
    mean_of_rates = sum(s.wer for s in scores) / len(scores)
    assert mean_of_rates == pytest.approx((1 / 6 + 1 + 1 / 10 + 0 + 2 / 3) / 5)
    assert abs(mean_of_rates - counts.wer) > 0.1
    ops = {s.key: "".join(w.op for w in s.alignment) for s in scores}
    assert ops == {
        "a1": "CCCCDC",
        "a2": "S",
        "b1": "C" * 10 + "I",
        "b2": "CC",
        "c1": "SCIC",
    }  # jiwer places the insertion first among equal-cost alignments


def test_per_speaker_sums_add_up_to_the_total():
    scores = score_utterances(hand_made())
    total = pooled_counts(scores)
    table = per_speaker(scores)
    assert list(table) == ["alice", "bob", "carol"]
    for key in ("num_words", "substitutions", "deletions", "insertions", "num_utterances"):
        assert sum(row[key] for row in table.values()) == getattr(total, key), key
    assert table["alice"]["wer"] == pytest.approx(
        jiwer.wer(["the cat sat on the mat", "hello"], ["the cat sat on mat", "yellow"])
    )
    assert table["bob"]["wer"] == pytest.approx(1 / 12)
    assert table["carol"]["cer"] == pytest.approx(jiwer.cer("yes no yes", "no no yes yes"))
    # no speaker anywhere: no table; some unlabelled: their own row
    assert per_speaker(score_utterances([ScoredUtterance("x", "a b", "a", None)])) == {}
    mixed = per_speaker(score_utterances([ScoredUtterance("x", "a b", "a", None), ScoredUtterance("y", "c", "c", "s")]))
    assert mixed["(none)"]["deletions"] == 1 and mixed["s"]["wer"] == 0.0


def test_wer_by_length_bins_pool_and_fall_back_to_duration():
    unit, bins = wer_by_length(score_utterances(hand_made()), max_bins=3)
    assert unit == "words"
    assert sum(b.num_utterances for b in bins) == 5 and sum(b.num_words for b in bins) == 22
    assert bins[0].label.startswith("1") and bins[-1].label.endswith("10 words")
    isolated = [ScoredUtterance(str(i), "yes", "yes" if i % 2 else "no", None, 0.3 + i / 10) for i in range(8)]
    unit, bins = wer_by_length(score_utterances(isolated), max_bins=4)
    assert unit == "seconds" and len(bins) == 4 and all(b.label.endswith(" s") for b in bins)
    assert [b.wer for b in bins] == [0.5] * 4


def test_wer_interval_is_seeded_and_contains_the_estimate():
    rng = np.random.default_rng(7)
    words = rng.integers(1, 20, size=300)
    errors = rng.binomial(words, 0.15)
    wer = errors.sum() / words.sum()
    low, high = wer_interval(errors, words, samples=1000, seed=3)
    assert (low, high) == wer_interval(errors, words, samples=1000, seed=3)
    assert (low, high) != wer_interval(errors, words, samples=1000, seed=4)
    assert low < wer < high
    assert 0.005 < high - low < 0.06  # about 4 standard errors of a 15 % WER over ~3000 words
    with pytest.raises(ValueError, match="at least one reference word"):
        wer_interval([0, 1], [3, 0])


def test_paired_bootstrap_on_constructed_cases():
    words = [5] * 200
    same = paired_bootstrap([1] * 200, [1] * 200, words, seed=1)
    assert same.difference == 0 and same.low == same.high == 0 and same.p_value == 1.0
    # B repairs one error in each of 60 utterances: a clear, significant gain
    errors_a = [1] * 100 + [0] * 100
    errors_b = [0] * 60 + [1] * 40 + [0] * 100
    clear = paired_bootstrap(errors_a, errors_b, words, samples=2000, seed=1)
    assert clear.difference == pytest.approx(-60 / 1000)
    assert clear.low < clear.difference < clear.high < 0
    assert clear.p_value < 0.001
    # B fixes 3 utterances and breaks 2: no evidence either way
    errors_b = [0] * 3 + [1] * 97 + [1] * 2 + [0] * 98
    unclear = paired_bootstrap(errors_a, errors_b, words, samples=2000, seed=1)
    assert unclear.difference == pytest.approx(-1 / 1000)
    assert unclear.low < 0 < unclear.high and unclear.p_value > 0.5
    assert unclear == paired_bootstrap(errors_a, errors_b, words, samples=2000, seed=1)


def test_alignments_are_sclite_style():
    (score,) = score_utterances([ScoredUtterance("u1", "yes no yes maybe", "no no yes yes", "kim")])
    assert alignment_block(score) == [
        "id: (u1)",
        "Speaker: kim",
        "Scores: (#C #S #D #I) 2 2 0 0",
        "REF:  YES no yes MAYBE",
        "HYP:  NO  no yes YES",
        "Eval: S          S",
    ]
    (score,) = score_utterances([ScoredUtterance("u2", "one two three five", "one three five six", None)])
    assert alignment_block(score)[1:] == [
        "Scores: (#C #S #D #I) 3 0 1 1",
        "REF:  one TWO three five ***",
        "HYP:  one *** three five SIX",
        "Eval:     D              I",
    ]


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("report")
    failed = {"/data/quiet.wav": "/data/quiet.wav: transcript '?!' has no usable characters"}
    summary = write_reports(
        folder,
        hand_made(),
        failed,
        {
            "num_failed": 1,
            "failed": failed,
            "decoder": "greedy",
            "manifest": "hand.jsonl",
            "decode_seconds": 1.0,
            "real_time_factor": 0.01,
        },
        title="Hand-made set",
    )
    return folder, summary


def test_report_files_and_summary_keys(report_dir):
    folder, summary = report_dir
    assert sorted(p.name for p in folder.iterdir()) == [
        "alignments.txt",
        "hyp.jsonl",
        "report.html",
        "report.md",
        "summary.json",
    ]
    on_disk = json.loads((folder / "summary.json").read_text())
    assert on_disk == json.loads(json.dumps(summary))
    assert on_disk["wer"] == pytest.approx(5 / 22) and on_disk["sentence_error_rate"] == pytest.approx(4 / 5)
    low, high = on_disk["wer_ci95"]
    assert low <= on_disk["wer"] <= high
    assert on_disk["per_speaker"]["carol"] == {
        "wer": 2 / 3,
        "cer": pytest.approx(jiwer.cer("yes no yes", "no no yes yes")),
        "num_words": 3,
        "substitutions": 1,
        "deletions": 0,
        "insertions": 1,
        "num_utterances": 1,
    }
    markdown = (folder / "report.md").read_text()
    assert "22.73 %" in markdown and "| carol | 1 | 3 | 66.67 %" in markdown
    assert "| hello → yellow | 1 |" in markdown and "Not scored (1)" in markdown and "no usable characters" in markdown
    alignments = (folder / "alignments.txt").read_text()
    assert alignments.count("id: (") == 5 and "REF:  the cat sat on THE mat" in alignments
    rows = [json.loads(line) for line in (folder / "hyp.jsonl").read_text().splitlines()]
    assert rows[1] == {"id": "a2", "text": "yellow", "reference": "hello", "duration": 1.0, "speaker": "alice"}
    html = (folder / "report.html").read_text()
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html), "the page must not load anything from the network"
    assert html.count("data:image/png;base64,") == 3  # speakers, lengths, confusions


def _browser():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    pytest.skip("no chromium on PATH: install Debian's `chromium` to run the headless-browser check")


def _dump_dom(browser: str, url: str, profile) -> str:
    result = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={profile}", "--dump-dom", url],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def test_report_html_in_a_headless_browser(report_dir, tmp_path):
    browser = _browser()
    folder, _ = report_dir
    page = (folder / "report.html").as_uri()
    dom = _dump_dom(browser, page, tmp_path / "profile")
    assert re.search(r'id="wer">22\.73 %<', dom)
    assert "5 of 5 utterances shown" in dom  # written by the page's script: it ran
    assert "/data/quiet.wav" in dom and "no usable characters" in dom
    dom = _dump_dom(browser, page + "#ins", tmp_path / "profile")  # a link can open the page filtered
    assert "2 of 5 utterances shown" in dom
    # click the "errors" header twice: most errors first
    sorted_page = tmp_path / "sorted.html"
    click = (
        "<script>var h = Array.prototype.find.call(document.querySelectorAll('#utterances th'), "
        "function (th) { return th.textContent === 'errors'; }); h.click(); h.click();</script></body>"
    )
    sorted_page.write_text((folder / "report.html").read_text().replace("</body>", click))
    dom = _dump_dom(browser, sorted_page.as_uri(), tmp_path / "profile")
    order = re.findall(r'<tr data-tags="[^"]*" data-speaker="[^"]*"[^>]*><td>([^<]+)</td>', dom)
    assert order[0] == "c1" and order[-1] == "b2" and len(order) == 5


def test_training_curves_png(tmp_path):
    history = [
        {"epoch": e, "train_loss": 3.0 / e, "dev_loss": 2.5 / e, "dev_wer": 1.0 / e, "seconds": 1.0}
        for e in range(1, 6)
    ]
    plot_training_curves(history, tmp_path / "curves.png")
    image = (tmp_path / "curves.png").read_bytes()
    assert image[:8] == b"\x89PNG\r\n\x1a\n" and len(image) > 10_000
    assert [p.name for p in tmp_path.iterdir()] == ["curves.png"]  # no temporary file left behind


def _evaluation(folder, hypotheses: list[str], references: list[str]):
    utterances = [
        ScoredUtterance(f"u{i}", r, h, f"s{i % 3}", 1.0) for i, (r, h) in enumerate(zip(references, hypotheses))
    ]
    write_reports(folder, utterances, {}, {"decoder": "greedy"}, title=folder.name)
    return folder


def test_compare_two_evaluations(tmp_path):
    references = ["one two three four"] * 120
    hyp_a = ["one two three four"] * 40 + ["one two tree four"] * 80
    hyp_b = ["one two three four"] * 90 + ["one two tree four"] * 28 + ["one two tree for"] * 2
    _evaluation(tmp_path / "base", hyp_a, references)
    _evaluation(tmp_path / "new", hyp_b, references)
    comparison = compare(tmp_path / "base", tmp_path / "new", seed=5)
    assert comparison.counts_a.wer == pytest.approx(80 / 480) and comparison.counts_b.wer == pytest.approx(32 / 480)
    assert len(comparison.better) == 50 and len(comparison.worse) == 2
    assert comparison.bootstrap.difference == pytest.approx(-48 / 480)
    assert comparison.bootstrap.high < 0 and comparison.bootstrap.p_value < 0.01
    assert comparison.verdict().startswith("B is better than A by 10.00 points")

    result = asr("compare", tmp_path / "base", tmp_path / "new", "--out", tmp_path / "cmp", "--seed", 5, "--show", 2)
    assert result.returncode == 0, result.stderr
    assert "B - A: -10.00 points" in result.stdout and "B better on 50 utterances, worse on 2" in result.stdout
    assert "worse in B (2 of 2)" in result.stdout and "better in B (2 of 50)" in result.stdout
    saved = json.loads((tmp_path / "cmp" / "compare.json").read_text())
    assert saved["p_value"] == comparison.bootstrap.p_value and len(saved["better"]) == 50
    html = (tmp_path / "cmp" / "compare.html").read_text()
    assert 'id="difference">-10.00 pts<' in html and "data:image/png;base64," in html


def test_compare_refuses_different_manifests(tmp_path):
    _evaluation(tmp_path / "a", ["yes no"], ["yes no"])
    _evaluation(tmp_path / "b", ["yes no"], ["yes yes"])
    with pytest.raises(AsrError, match="different references"):
        compare(tmp_path / "a", tmp_path / "b")
    result = asr("compare", tmp_path / "a", tmp_path / "missing")
    assert result.returncode == 2 and "missing/hyp.jsonl: no such file" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_reference_that_normalises_to_nothing_is_reported_not_a_crash(untrained_model, fsdd_clips, tmp_path):
    clips = ["0_george_10", "1_jackson_11", "6_nicolas_12"]
    texts = ["zero", "?!", "six"]
    utterances = [Utterance(str(fsdd_clips / f"{c}.wav"), t, 0.5, c.split("_")[1], c) for c, t in zip(clips, texts)]
    write_manifest(tmp_path / "m.jsonl", utterances)
    result = asr("evaluate", "--model", untrained_model, "--manifest", tmp_path / "m.jsonl", "--out", tmp_path / "eval")
    assert result.returncode == 0, result.stderr
    assert "1 utterance(s) could not be decoded" in result.stderr
    summary = json.loads((tmp_path / "eval" / "summary.json").read_text())
    assert summary["num_utterances"] == 2 and summary["num_words"] == 2 and summary["num_failed"] == 1
    (reason,) = summary["failed"].values()
    assert "1_jackson_11.wav" in reason and "no usable characters" in reason
    assert set(summary["per_speaker"]) == {"george", "nicolas"}
    assert summary["model_settings"] == {"note": "untrained"} and summary["real_time_factor"] > 0
    for name in ("report.md", "report.html"):
        assert "1_jackson_11.wav" in (tmp_path / "eval" / name).read_text()
    assert [json.loads(line)["id"] for line in (tmp_path / "eval" / "hyp.jsonl").read_text().splitlines()] == [
        clips[0],
        clips[2],
    ]

    write_manifest(tmp_path / "empty.jsonl", [Utterance(str(fsdd_clips / "0_george_10.wav"), "...", 0.5)])
    result = asr(
        "evaluate", "--model", untrained_model, "--manifest", tmp_path / "empty.jsonl", "--out", tmp_path / "e2"
    )
    assert (
        result.returncode == 2 and "no utterance could be scored" in result.stderr and "Traceback" not in result.stderr
    )


def test_compare_html_in_a_headless_browser(tmp_path):
    browser = _browser()
    references = ["yes no yes"] * 30
    _evaluation(tmp_path / "a", ["yes no no"] * 20 + ["yes no yes"] * 10, references)
    _evaluation(tmp_path / "b", ["yes no yes"] * 25 + ["yes yes"] * 5, references)
    comparison = compare(tmp_path / "a", tmp_path / "b")
    page = tmp_path / "compare.html"
    page.write_text(comparison_html(comparison))
    dom = _dump_dom(browser, page.as_uri(), tmp_path / "profile")
    assert re.search(r'id="wer-a">22\.22 %<', dom) and re.search(r'id="wer-b">5\.56 %<', dom)
    assert "25 of 30 utterances shown" in dom  # opens on the changed ones: 20 repaired, 5 broken
    assert "5 of 30 utterances shown" in _dump_dom(browser, page.as_uri() + "#worse", tmp_path / "profile")


HOSTILE = [  # (id, speaker, reference, hypothesis): markup in every field that reaches a page
    (
        '<script>alert("id")</script>',
        "</td><script>alert(1)</script>",
        "yes <script>alert(2)</script> no",
        "yes </td></tr><td>x no",
    ),
    ("u2", 'bob" onmouseover="alert(3)', "a </td> b", "a <img src=x onerror=alert(4)> b"),
    ("u3", "carol", "plain words here", "plain words there"),
]


def _assert_inert(html: str, inline_scripts: int = 1):
    """No markup from the data survives: only the page's own script, cells balanced, text escaped."""
    assert html.count("<script") == inline_scripts
    assert "alert(" not in html.split("<script>")[-1].split("</script>")[0]  # not inside the page's script
    assert html.count("<td") == html.count("</td>")
    assert html.count("<tr") == html.count("</tr>")
    assert "<img src=x" not in html and 'onmouseover="alert' not in html
    assert "&lt;script&gt;alert(2)&lt;/script&gt;" in html and "&lt;/td&gt;&lt;/tr&gt;&lt;td&gt;x" in html
    assert "&lt;img" in html and "onerror=alert(4)&gt;" in html  # words of the alignment, each escaped


def test_markup_in_utterances_is_escaped_in_report_and_compare_pages(tmp_path):
    """Transcripts, ids, speakers, failed paths and folder names are text, never markup."""
    failed = {"/data/<script>alert(5)</script>.wav": "cannot read </td> audio"}
    folder_a, folder_b = tmp_path / "<svg onload=alert(7)>", tmp_path / "B"
    utterances = [ScoredUtterance(key, ref, hyp, speaker, 1.0) for key, speaker, ref, hyp in HOSTILE]
    write_reports(
        folder_a,
        utterances,
        failed,
        {"decoder": "greedy", "manifest": "<i>m</i>.jsonl"},
        title="<script>alert(6)</script>",
    )
    html = (folder_a / "report.html").read_text()
    _assert_inert(html)
    assert "&lt;script&gt;alert(&quot;id&quot;)&lt;/script&gt;" in html and "/data/&lt;script&gt;alert(5)" in html
    assert "<title>&lt;script&gt;alert(6)&lt;/script&gt;</title>" in html and "&lt;i&gt;m&lt;/i&gt;.jsonl" in html

    better = [ScoredUtterance(key, ref, ref, speaker, 1.0) for key, speaker, ref, _ in HOSTILE]
    write_reports(folder_b, better, {}, {"decoder": "greedy"}, title="B")
    page = write_comparison(compare(folder_a, folder_b, samples=200), tmp_path / "cmp")
    html = page.read_text()
    _assert_inert(html)
    assert "<svg" not in html and "<h1>&lt;svg onload=alert(7)&gt; vs B</h1>" in html


class _DiskFull:
    """A file that takes half of what is written to it, then fails as a full disk does."""

    def __init__(self, real):
        self.real = real

    def write(self, data):
        self.real.write(data[: len(data) // 2])
        self.real.flush()
        raise OSError(errno.ENOSPC, "No space left on device")

    def __getattr__(self, name):
        return getattr(self.real, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.real.close()


def _fill_disk_on(monkeypatch, filename):
    """Every file opened for writing whose name is ``filename`` (or a temporary file named after
    it) fills the disk half-way through its contents."""
    real_open = io.open

    def open_(file, mode="r", *args, **kwargs):
        handle = real_open(file, mode, *args, **kwargs)
        name = os.readlink(f"/proc/self/fd/{file}") if isinstance(file, int) else os.fspath(file)
        if ("w" in mode or "x" in mode) and os.path.basename(name).lstrip(".").startswith(filename):
            return _DiskFull(handle)
        return handle

    monkeypatch.setattr(io, "open", open_)


def _files(folder):
    return {p.name: p.read_bytes() for p in folder.iterdir()}


@pytest.mark.parametrize("failing", ["summary.json", "report.md", "hyp.jsonl", "report.html", "alignments.txt"])
def test_a_failed_rewrite_leaves_the_earlier_reports_whole(tmp_path, monkeypatch, failing):
    """A full disk while an --out folder from an earlier run is rewritten: every file is the
    earlier run's, whole, and no temporary file is left behind."""
    if not os.path.isdir("/proc/self/fd"):
        pytest.skip("needs /proc to name the file behind a descriptor")
    folder = tmp_path / "eval"
    write_reports(folder, hand_made(), {}, {"decoder": "greedy"}, title="first run")
    before = _files(folder)
    json.loads(before["summary.json"])
    _fill_disk_on(monkeypatch, failing)
    second = hand_made([(k, s, r, r) for k, s, r, _ in HAND_MADE])  # a perfect run: every file would differ
    with pytest.raises(OSError, match="No space left"):
        write_reports(folder, second, {}, {"decoder": "greedy"}, title="second run")
    monkeypatch.undo()
    after = _files(folder)
    assert sorted(after) == sorted(before)  # no .tmp file left
    if failing != "summary.json":  # the files before it may be the second run's, each whole; summary.json is last
        assert after["summary.json"] == before["summary.json"]
    assert after[failing] == before[failing]
    assert json.loads(after["summary.json"])["wer"] == pytest.approx(5 / 22)


def test_a_report_that_fails_to_render_changes_no_file(tmp_path, monkeypatch):
    folder = tmp_path / "eval"
    write_reports(folder, hand_made(), {}, {"decoder": "greedy"}, title="first run")
    before = _files(folder)

    def broken(*args, **kwargs):
        raise RuntimeError("plotting failed")

    monkeypatch.setattr("asr.evaluation.report.html.confusions_figure", broken)
    with pytest.raises(RuntimeError, match="plotting failed"):
        write_reports(folder, hand_made(HAND_MADE[:2]), {}, {"decoder": "greedy"}, title="second run")
    assert _files(folder) == before  # rendered before anything is written: not a mix of two runs


def test_report_html_plays_each_utterance_from_a_relative_path(fsdd_clips, tmp_path):
    """Each utterance row has an <audio> player whose source, relative to the report, is the real
    clip: Chromium loads its metadata (the clip's length) from there."""
    browser = _browser()
    clip = fsdd_clips / "7_theo_0.wav"
    utterances = [
        ScoredUtterance("7_theo_0", "seven", "seven", "theo", 0.5, str(clip)),
        ScoredUtterance("seg", "seven", "eleven", "theo", 0.2, str(clip), offset=0.1),
    ]
    folder = tmp_path / "eval"
    write_reports(folder, utterances, {}, {"decoder": "greedy"}, title="players")
    html = (folder / "report.html").read_text()
    sources = re.findall(r'<audio controls preload="none" src="([^"]+)">', html)
    relative = Path(os.path.relpath(clip, folder)).as_posix()
    assert sources == [relative, f"{relative}#t=0.100,0.300"]
    probe = (
        "<script>var a = document.querySelector('audio'); a.preload = 'metadata';"
        "a.addEventListener('loadedmetadata', function () { document.body.setAttribute('data-seconds', "
        "a.duration.toFixed(2)); }); a.load();</script></body>"
    )
    page = folder / "probe.html"
    page.write_text(html.replace("</body>", probe))
    result = subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--allow-file-access-from-files",
            "--virtual-time-budget=5000",
            "--dump-dom",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    seconds = soundfile.info(str(clip)).duration
    assert f'data-seconds="{seconds:.2f}"' in result.stdout, result.stderr[-2000:]


def test_summary_and_page_state_where_the_result_came_from(tmp_path, fsdd_clips, untrained_model):
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(
        json.dumps({"audio_filepath": str(fsdd_clips / "7_theo_0.wav"), "duration": 0.5, "text": "seven"}) + "\n"
    )
    summary = evaluate(load_model(untrained_model), manifest, tmp_path / "eval")
    origin = json.loads((tmp_path / "eval" / "summary.json").read_text())["provenance"]
    assert origin == summary["provenance"]
    assert origin["torch"] == torch.__version__ and origin["python"] == platform.python_version()
    assert origin["threads"] == torch.get_num_threads() and origin["normalizer"] == "asr.data.text.normalize_text"
    assert origin["git_commit"] is None or re.fullmatch(r"[0-9a-f]{12}(\+changes)?", origin["git_commit"])
    assert f"torch {torch.__version__}" in (tmp_path / "eval" / "report.html").read_text()
