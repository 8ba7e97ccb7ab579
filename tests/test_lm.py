"""The n-gram LM: Kneser-Ney discounts and counts by hand, normalisation, and KenLM agreement."""

import math
import subprocess
import sys
from collections import Counter
from fractions import Fraction

import pytest

from asr.data.text import CharTokenizer, normalize_text
from asr.decode.lm import (
    BOS,
    EOS,
    UNK,
    KneserNeyLM,
    adjusted_counts,
    arpa_vocabulary,
    build_lm,
    discounts_from_counts_of_counts,
    spell,
)


def read_arpa(path):
    """An independent ARPA reader: {ngram: (log10 p, log10 backoff)}."""
    table, order = {}, 0
    for line in path.read_text().splitlines():
        if line.endswith("-grams:"):
            order = int(line[1])
        elif order and line and not line.startswith("\\"):
            fields = line.split("\t")
            table[tuple(fields[1].split())] = (float(fields[0]), float(fields[2]) if len(fields) > 2 else 0.0)
    return table


def arpa_probability(table, word, context):
    """p(word | context) by the ARPA back-off rule, from the file alone."""
    weight = 0.0
    while True:
        ngram = (*context, word)
        if ngram in table:
            return 10 ** (weight + table[ngram][0])
        if context in table:
            weight += table[context][1]
        context = context[1:]


def test_discounts_match_the_hand_computed_formula():
    # t1=10, t2=4, t3=2, t4=1: Y = 10/18; D1 = 1 - 2Y*4/10, D2 = 2 - 3Y*2/4, D3+ = 3 - 4Y*1/2
    d = discounts_from_counts_of_counts(Counter({1: 10, 2: 4, 3: 2, 4: 1, 7: 3}), order=2)
    assert d.d1 == pytest.approx(5 / 9)
    assert d.d2 == pytest.approx(7 / 6)
    assert d.d3 == pytest.approx(17 / 9)
    assert (d.of(1), d.of(2), d.of(3), d.of(9)) == (d.d1, d.d2, d.d3, d.d3)


def test_sparse_counts_fall_back_like_lmplz():
    d = discounts_from_counts_of_counts(Counter({1: 3, 2: 1}), order=3)  # t3 = t4 = 0
    assert (d.d1, d.d2, d.d3) == (0.5, 1.0, 1.5)


def test_discounts_are_valid_without_any_count_of_four_like_lmplz():
    # lmplz falls back only when t1, t2 or t3 is 0 or D_k leaves [0, k]; t4 = 0 gives D3+ = 3
    # (the old rule fell back here). Bigrams, raw: <s> a 1, a a 1, a </s> 2, <s> b 3, b a 1,
    # b </s> 2 -> t1=3, t2=2, t3=1, t4=0. Unigrams, left contexts: a {<s>, a, b} 3, b {<s>} 1,
    # </s> {a, b} 2 -> t1=t2=t3=1, t4=0.
    model = KneserNeyLM([["a", "a"], ["b", "a"], ["b"], ["b"]], order=2)

    def by_hand(t1, t2, t3, t4):
        y = Fraction(t1, t1 + 2 * t2)
        return 1 - 2 * y * t2 / t1, 2 - 3 * y * t3 / t2, 3 - 4 * y * t4 / t3

    d1, d2 = by_hand(1, 1, 1, 0), by_hand(3, 2, 1, 0)
    assert d1 == (Fraction(1, 3), 1, 3) and d2 == (Fraction(3, 7), Fraction(19, 14), 3)
    for got, want in zip(model.discounts, (d1, d2)):
        assert (got.d1, got.d2, got.d3) == pytest.approx([float(x) for x in want])

    # unigrams: vocabulary a, b, </s>, <unk>; total 6; gamma = (D3 + D1 + D2) / 6
    uniform, gamma = Fraction(1, 4), (d1[2] + d1[0] + d1[1]) / 6
    p_a = (3 - d1[2]) / 6 + gamma * uniform
    p_b = (1 - d1[0]) / 6 + gamma * uniform
    p_end = (2 - d1[1]) / 6 + gamma * uniform
    # bigrams: context <s> has a 1, b 3 (total 4); contexts a and b each have a 1, </s> 2 (total 3)
    gamma_bos, gamma_ab = (d2[0] + d2[2]) / 4, (d2[0] + d2[1]) / 3
    p_b_bos = (3 - d2[2]) / 4 + gamma_bos * p_b
    p_a_b = (1 - d2[0]) / 3 + gamma_ab * p_a
    p_end_a = (2 - d2[1]) / 3 + gamma_ab * p_end
    assert (p_b_bos, p_a_b, p_end_a) == (Fraction(1, 4), Fraction(901, 3024), Fraction(1273, 3024))
    sentence = math.log10(p_b_bos * p_a_b * p_end_a)  # log10 p("b a")
    ours = sum(math.log10(model.probability(w, c)) for w, c in [("b", (BOS,)), ("a", ("b",)), (EOS, ("a",))])
    assert ours == pytest.approx(sentence, abs=1e-9)
    assert model.probability(UNK) == pytest.approx(float(gamma * uniform))


def test_discounts_fall_back_only_outside_zero_to_k():
    # D2 = 0 exactly (t1=4, t2=1, t3=1: Y = 2/3, D2 = 2 - 3Y) is in range, as in lmplz
    d = discounts_from_counts_of_counts(Counter({1: 4, 2: 1, 3: 1}), order=2)
    assert (d.d1, d.d2, d.d3) == pytest.approx([2 / 3, 0.0, 3.0])
    # D2 = 2 - 3 (1/2) 3 / 1 < 0, D3+ = 3 - 4 (1/3) 3 / 1 < 0: fall back
    for t in (Counter({1: 2, 2: 1, 3: 3}), Counter({1: 1, 2: 1, 3: 1, 4: 3})):
        d = discounts_from_counts_of_counts(t, order=2)
        assert (d.d1, d.d2, d.d3) == (0.5, 1.0, 1.5)


def test_a_context_left_with_no_mass_gets_a_minus_99_backoff(tmp_path):
    # Bigrams <s> b 1, b a 2, a </s> 3, <s> a 1, <s> c 1, c b 1: t1=4, t2=1, t3=1, so D2 = 0 and
    # context b (only "b a", twice) keeps all its mass: gamma(b) = 0, whose log10 the file writes as -99.
    model = KneserNeyLM([["b", "a"], ["a"], ["c", "b", "a"]], order=2)
    assert model.discounts[1].d2 == 0.0 and model.backoffs[1][("b",)] == 0.0
    model.write_arpa(tmp_path / "lm.arpa")
    table = read_arpa(tmp_path / "lm.arpa")
    assert table[("b",)][1] == -99.0
    assert arpa_probability(table, "a", ("b",)) == pytest.approx(1.0)


def test_adjusted_counts_use_continuations_below_the_top_order():
    counts = adjusted_counts([["a", "b"], ["c", "b"], ["b"]], order=2)
    bigrams, unigrams = counts[1], counts[0]
    assert bigrams[(BOS, "a")] == 1 and bigrams[("b", EOS)] == 3  # raw counts at the top order
    assert unigrams[("b",)] == 3  # left contexts a, c and <s>
    assert unigrams[(EOS,)] == 1  # only ever after b
    assert unigrams[("a",)] == 1 and (BOS,) not in unigrams


@pytest.fixture(scope="module")
def an4_sentences(shared_data):
    lines = (shared_data / "an4").rglob("*.transcription")
    sentences = []
    for path in lines:
        for line in path.read_text(encoding="utf-8").splitlines():
            text = normalize_text(line.split("(")[0].replace("<s>", "").replace("</s>", ""))
            if text:
                sentences.append(text.split())
    assert len(sentences) > 50
    return sentences


@pytest.mark.parametrize("order", [1, 2, 3, 4])
def test_every_context_sums_to_one_in_the_arpa_file(an4_sentences, order, tmp_path):
    model = KneserNeyLM(an4_sentences, order, extra_vocabulary=["zebra"])
    model.write_arpa(tmp_path / "lm.arpa")
    table = read_arpa(tmp_path / "lm.arpa")
    first = an4_sentences[0]
    contexts = [(), (BOS,), (first[0],), (BOS, first[0]), tuple(first[:3]), ("zebra", "never", "seen")]
    for context in contexts:
        context = context[-(order - 1) :] if order > 1 else ()
        total = sum(arpa_probability(table, word, context) for word in model.vocabulary)
        assert total == pytest.approx(1.0, abs=1e-3), context
    assert arpa_probability(table, "zebra", ()) > 0  # unseen vocabulary gets the interpolated mass
    assert arpa_probability(table, UNK, ()) > 0


def test_flashlight_kenlm_loads_the_file_and_agrees(an4_sentences, tmp_path):
    from flashlight.lib.text.decoder.kenlm import KenLM
    from flashlight.lib.text.dictionary import Dictionary

    model = KneserNeyLM(an4_sentences, 3)
    model.write_arpa(tmp_path / "lm.arpa")
    words = Dictionary()
    for word in model.vocabulary:
        words.add_entry(word)
    words.set_default_index(words.get_index(UNK))
    kenlm = KenLM(str(tmp_path / "lm.arpa"), words)
    for sentence in [an4_sentences[0], an4_sentences[-1], ["enter", "qqq", "seven"]]:
        state, total, ours, context = kenlm.start(False), 0.0, 0.0, (BOS,)
        for word in sentence:
            state, score = kenlm.score(state, words.get_index(word))
            total += score
            ours += math.log10(model.probability(word, context))
            context = (*context, word)
        state, score = kenlm.finish(state)
        total += score
        ours += math.log10(model.probability(EOS, context))
        assert total == pytest.approx(ours, abs=1e-4)


def test_lexicon_spells_words_in_the_model_tokens():
    tokenizer = CharTokenizer()
    assert spell("don't", tokenizer) == ["d", "o", "n", "'", "t", "|"]
    assert spell("naïve", tokenizer) is None  # not normalised: cannot be spelled
    assert spell("Stella", tokenizer) == ["s", "t", "e", "l", "l", "a", "|"]  # an upper-case LM word, lower-cased


def test_lm_build_command_writes_arpa_and_lexicon(tmp_path):
    text = tmp_path / "text.txt"
    text.write_text("Yes, no!\nno no yes\n\n42 yes\n", encoding="utf-8")
    manifest = tmp_path / "m.jsonl"
    manifest.write_text('{"audio_filepath": "x.wav", "text": "maybe"}\n', encoding="utf-8")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "asr",
            "lm",
            "build",
            "--text",
            str(text),
            "--order",
            "2",
            "--out",
            str(tmp_path / "lm.arpa"),
            "--vocab-from",
            str(manifest),
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert arpa_vocabulary(tmp_path / "lm.arpa") == {BOS, EOS, UNK, "yes", "no", "forty", "two", "maybe"}
    lexicon = (tmp_path / "lm.lexicon.txt").read_text().splitlines()
    assert "maybe\tm a y b e |" in lexicon and "yes\ty e s |" in lexicon and len(lexicon) == 5


def test_lm_build_leaves_out_the_tuning_sets_sentences(tmp_path):
    # the dev manifest's transcript is dropped however it is punctuated, with its n-grams and the word "red"
    text = _write(tmp_path / "t.txt", "the red car\nThe red, car!\na blue car\nthe blue sky\n")
    dev = tmp_path / "dev.jsonl"
    dev.write_text('{"audio_filepath": "x.wav", "text": "the red car"}\n', encoding="utf-8")
    command = [sys.executable, "-m", "asr", "lm", "build", "--text", str(text), "--order", "2"]
    result = subprocess.run(
        command + ["--out", str(tmp_path / "lm.arpa"), "--exclude", str(dev)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert "2 sentences (2 left out: in " in result.stdout
    bigrams = (tmp_path / "lm.arpa").read_text().split("\\2-grams:")[1]
    assert "\tthe red" not in bigrams and "\tred car" not in bigrams and "\tblue car" in bigrams
    assert arpa_vocabulary(tmp_path / "lm.arpa") == {BOS, EOS, UNK, "a", "blue", "car", "the", "sky"}
    everything = _write(tmp_path / "all.txt", "the red car\n")
    result = subprocess.run(
        command[:6] + [str(everything), "--order", "2", "--out", str(tmp_path / "x.arpa"), "--exclude", str(dev)],
        capture_output=True,
        text=True,
    )
    assert (
        result.returncode == 2
        and "every sentence is a transcript of" in result.stderr
        and "Traceback" not in result.stderr
    )


def test_token_lm_predicts_every_token(tmp_path):
    built = build_lm([_write(tmp_path / "t.txt", "ab ba\n")], 3, tmp_path / "tok.arpa", units="tokens")
    vocabulary = arpa_vocabulary(built.arpa)
    assert {"a", "b", "|", "z", "'"} <= vocabulary and "<blank>" not in vocabulary


def test_text_that_is_not_utf8_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"caf\xe9\n")
    result = subprocess.run(
        [sys.executable, "-m", "asr", "lm", "build", "--text", str(bad), "--out", str(tmp_path / "x.arpa")],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2 and "bad.txt: not UTF-8" in result.stderr and "Traceback" not in result.stderr


def test_a_unigram_lm_is_refused_up_front(tmp_path):
    text = _write(tmp_path / "t.txt", "one two\n")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "asr",
            "lm",
            "build",
            "--text",
            str(text),
            "--order",
            "1",
            "--out",
            str(tmp_path / "x.arpa"),
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0 and "cannot load a unigram model" in result.stderr
    assert "Traceback" not in result.stderr and "a bug in asr" not in result.stderr
    assert not (tmp_path / "x.arpa").exists()


def _write(path, text):
    path.write_text(text, encoding="utf-8")
    return path
