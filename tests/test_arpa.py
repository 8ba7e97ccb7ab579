"""ARPA models made elsewhere: read/write, linear interpolation, pruning, vocabulary restriction,
each checked for normalisation over every context, and the `asr lm mix/prune/lexicon/restrict` commands."""

import math

import pytest

from asr.cli.main import main
from asr.data.text import CharTokenizer
from asr.decode.arpa import (
    SENTENCE_START,
    UNK,
    BackoffLM,
    interpolate,
    most_probable_words,
    perplexity,
    prune,
    read_arpa,
    restrict_vocabulary,
    write_arpa,
)
from asr.decode.lm import KneserNeyLM, spell
from asr.utils.errors import AsrError

DIGITS = [
    "zero one two three",
    "one two three four",
    "five six seven",
    "seven eight nine",
    "nine nine one",
    "two two four six eight",
    "one three five seven nine",
    "zero zero seven",
    "four five six seven",
]
ANIMALS = [
    "the cat sat on the mat",
    "the dog sat",
    "a cat and a dog",
    "one cat two dogs",
    "the dog ran",
    "a big dog ran to the cat",
    "the cat ran",
    "two cats sat on a dog",
]


def kneser_ney(texts, order, tmp_path, name):
    """An asr.decode.lm model of ``texts`` and the ARPA file it writes."""
    model = KneserNeyLM([t.split() for t in texts], order)
    path = tmp_path / f"{name}.arpa"
    model.write_arpa(path)
    return model, path


def contexts(model: BackoffLM):
    """Every context the model can be asked about with a weight of its own: () and each listed
    n-gram below the top order."""
    yield ()
    for table in model.probs[:-1]:
        yield from table


def distribution_total(model: BackoffLM, context, vocabulary) -> float:
    return sum(10 ** model.logprob((*context, word)) for word in vocabulary if word != SENTENCE_START)


def assert_normalised(model: BackoffLM, vocabulary=None, tolerance=1e-4):
    vocabulary = vocabulary or model.vocabulary
    checked = 0
    for context in contexts(model):
        assert distribution_total(model, context, vocabulary) == pytest.approx(1.0, abs=tolerance), context
        checked += 1
    assert checked > 10


def kn_probability(model: KneserNeyLM, ngram) -> float:
    """p(w | h) by asr.decode.lm's own back-off code; 0 for a word outside its vocabulary."""
    return model.probability(ngram[-1], ngram[:-1]) if ngram[-1] in model.vocabulary else 0.0


@pytest.fixture
def two_lms(tmp_path):
    digits, digits_path = kneser_ney(DIGITS, 3, tmp_path, "digits")
    animals, animals_path = kneser_ney(ANIMALS, 2, tmp_path, "animals")
    return digits, digits_path, animals, animals_path


def test_read_and_write_round_trip(two_lms, tmp_path):
    digits, path, _, _ = two_lms
    model = read_arpa(path)
    assert model.order == 3 and model.vocabulary == set(digits.vocabulary) | {SENTENCE_START}
    for table in model.probs:
        for ngram, logp in table.items():
            if ngram != (SENTENCE_START,):
                assert logp == pytest.approx(math.log10(kn_probability(digits, ngram)), abs=1e-5), ngram
    again = read_arpa(write_arpa(model, tmp_path / "again.arpa"))
    assert again.probs == model.probs and again.backoffs[:-1] == model.backoffs[:-1]
    # words separated by spaces, not tabs, read the same
    spaced = tmp_path / "spaced.arpa"
    spaced.write_text(path.read_text().replace("\t", " "))
    assert read_arpa(spaced).probs == model.probs
    assert_normalised(model)


def test_interpolation_sums_to_one_and_mixes_every_listed_ngram(two_lms, tmp_path):
    digits, digits_path, animals, animals_path = two_lms
    a, b = read_arpa(digits_path), read_arpa(animals_path)
    union = a.vocabulary | b.vocabulary
    assert len(union) < len(a.vocabulary) + len(b.vocabulary)  # some words in both ("one", "two")
    for weight in (0.0, 0.3, 0.8, 1.0):
        mixed = interpolate(a, b, weight)
        assert mixed.order == 3 and mixed.vocabulary == union
        assert_normalised(mixed, union)
        listed = 0
        for k in range(3):
            for ngram in set(a.probs[k]) | (set(b.probs[k]) if k < b.order else set()):
                if ngram == (SENTENCE_START,):
                    continue
                expected = weight * kn_probability(digits, ngram) + (1 - weight) * kn_probability(animals, ngram)
                assert 10 ** mixed.probs[k][ngram] == pytest.approx(expected, rel=1e-4, abs=1e-12), ngram
                listed += 1
        assert listed == sum(len(t) for t in mixed.probs) - 1
    # the written file reads back normalised (six decimals in the file)
    written = read_arpa(write_arpa(interpolate(a, b, 0.4), tmp_path / "mix.arpa"))
    assert_normalised(written, union, tolerance=1e-3)
    with pytest.raises(AsrError, match="in \\[0, 1\\]"):
        interpolate(a, b, 1.5)


def test_kenlm_reads_a_mixture_as_we_do(two_lms, tmp_path):
    from flashlight.lib.text.decoder.kenlm import KenLM
    from flashlight.lib.text.dictionary import Dictionary

    _, digits_path, _, animals_path = two_lms
    mixed = interpolate(read_arpa(digits_path), read_arpa(animals_path), 0.6)
    write_arpa(mixed, tmp_path / "mix.arpa")
    words = Dictionary()
    for word in sorted(mixed.vocabulary):
        words.add_entry(word)
    words.set_default_index(words.get_index(UNK))
    kenlm = KenLM(str(tmp_path / "mix.arpa"), words)
    for sentence in ["one cat sat", "the dog ran to seven", "nine nine one", "zero the"]:
        state, total, ours, context = kenlm.start(False), 0.0, 0.0, (SENTENCE_START,)
        for word in [*sentence.split(), "</s>"]:
            state, score = kenlm.score(state, words.get_index(word)) if word != "</s>" else kenlm.finish(state)
            total += score
            ours += mixed.logprob((*context, word))
            context = (*context, word)
        assert total == pytest.approx(ours, abs=1e-4), sentence  # both log10


def test_pruning_keeps_sums_at_one_and_drops_more_as_the_threshold_grows(two_lms):
    _, digits_path, _, animals_path = two_lms
    model = interpolate(read_arpa(digits_path), read_arpa(animals_path), 0.5)
    sizes = []
    for threshold in (0.0, 1e-4, 1e-3, 1e-2, 3e-2, 1e-1):
        pruned = prune(model, threshold)
        assert pruned.probs[0] == model.probs[0]  # unigrams are never pruned
        assert_normalised(pruned, model.vocabulary)
        for k in range(1, pruned.order):  # every kept n-gram's context is still listed
            assert all(g[:-1] in pruned.probs[k - 1] for g in pruned.probs[k])
        sizes.append(sum(len(t) for t in pruned.probs))
    assert sizes[0] == sum(len(t) for t in model.probs)  # threshold 0 keeps everything
    assert sizes == sorted(sizes, reverse=True) and sizes[-1] < sizes[0] // 2


def test_restricting_the_vocabulary_drops_words_and_keeps_sums_at_one(two_lms):
    _, digits_path, _, animals_path = two_lms
    model = interpolate(read_arpa(digits_path), read_arpa(animals_path), 0.5)
    dropped = {"cat", "seven", "dogs"}
    restricted = restrict_vocabulary(model, lambda word: word not in dropped)
    assert restricted.vocabulary == model.vocabulary - dropped
    assert not any(set(g) & dropped for table in restricted.probs for g in table)
    assert_normalised(restricted)
    removed_mass = sum(10 ** model.probs[0][(w,)] for w in dropped)
    assert 10 ** restricted.probs[0][(UNK,)] == pytest.approx(10 ** model.probs[0][(UNK,)] + removed_mass)
    assert perplexity(restricted, [["one", "two", "three"]]) > 1


def test_mix_command_with_a_weight_and_tuned_on_text(two_lms, tmp_path, capsys):
    _, digits_path, _, animals_path = two_lms
    assert (
        main(["lm", "mix", str(digits_path), str(animals_path), "--weight", "0.3", "--out", str(tmp_path / "m.arpa")])
        == 0
    )
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and "0.3 x" in out and "order 3" in out
    expected = interpolate(read_arpa(digits_path), read_arpa(animals_path), 0.3)
    assert read_arpa(tmp_path / "m.arpa").probs == read_arpa(write_arpa(expected, tmp_path / "e.arpa")).probs

    digit_text = tmp_path / "digits.txt"
    digit_text.write_text("one two three four\nseven eight nine\nfive six seven\n")
    assert (
        main(
            [
                "lm",
                "mix",
                str(digits_path),
                str(animals_path),
                "--tune-on",
                str(digit_text),
                "--out",
                str(tmp_path / "tuned.arpa"),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("| 0.")]
    assert len(rows) == 9  # the default grid 0.1 .. 0.9
    best = min(rows, key=lambda row: float(row.split("|")[2]))
    assert best.startswith("| 0.9 ")  # digit text: the digit LM's weight as high as the grid goes
    manifest = tmp_path / "animals.jsonl"
    manifest.write_text(
        '{"audio_filepath": "x.wav", "text": "The dog sat on the cat."}\n'
        '{"audio_filepath": "y.wav", "text": "a cat ran"}\n'
    )
    assert (
        main(
            [
                "lm",
                "mix",
                str(digits_path),
                str(animals_path),
                "--tune-on",
                str(manifest),
                "--weights",
                "0.05,0.5,0.95",
                "--out",
                str(tmp_path / "tuned.arpa"),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "0.05 x" in out.splitlines()[-1]  # animal text: the animal LM weighs most
    assert len([line for line in out.splitlines() if line.startswith("| 0.")]) == 3


def test_prune_restrict_and_lexicon_commands(tmp_path, capsys, untrained_model):
    # a word with a letter the character model has no token for
    model = KneserNeyLM([s.split() for s in [*DIGITS, "café au lait", "one café"]], 3)
    model.write_arpa(tmp_path / "lm.arpa")
    assert (
        main(["lm", "prune", str(tmp_path / "lm.arpa"), "--threshold", "0.01", "--out", str(tmp_path / "p.arpa")]) == 0
    )
    out = capsys.readouterr().out
    before, after = [sum(len(t) for t in read_arpa(tmp_path / n).probs) for n in ("lm.arpa", "p.arpa")]
    assert after < before and "->" in out and "kB" in out and out.count("\n") == 1

    assert (
        main(
            [
                "lm",
                "restrict",
                str(tmp_path / "lm.arpa"),
                "--out",
                str(tmp_path / "r.arpa"),
                "--model",
                str(untrained_model),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    restricted = read_arpa(tmp_path / "r.arpa")
    assert "café" not in restricted.vocabulary and "lait" in restricted.vocabulary
    assert "1 the model's tokens cannot spell removed (first: 'café')" in out
    assert_normalised(restricted, tolerance=1e-3)

    assert (
        main(
            [
                "lm",
                "lexicon",
                str(tmp_path / "lm.arpa"),
                "--out",
                str(tmp_path / "lexicon.txt"),
                "--model",
                str(untrained_model),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    lines = (tmp_path / "lexicon.txt").read_text().splitlines()
    words = set(model.vocabulary) - {"</s>", UNK, "café"}
    assert len(lines) == len(words) and "1 word(s) the tokens cannot spell left out (first: 'café')" in out
    tokenizer = CharTokenizer()
    assert all(line == f"{w}\t{' '.join(spell(w, tokenizer))}" for line, w in zip(lines, sorted(words)))
    assert "seven\ts e v e n |" in lines


def test_restrict_keeps_the_most_probable_spellable_words(tmp_path, capsys, untrained_model):
    texts = [*DIGITS, "one café", "café au lait"]
    model = KneserNeyLM([s.split() for s in texts], 2)
    model.write_arpa(tmp_path / "lm.arpa")
    full = read_arpa(tmp_path / "lm.arpa")
    unigram = {w: full.probs[0][(w,)] for w in full.words}
    spellable = full.words - {"café"}
    top = most_probable_words(full, 8, among=spellable)
    assert most_probable_words(restrict_vocabulary(full, spellable.__contains__), 8) == top
    # the eight most probable spellable words, by the file's own unigram probabilities
    assert len(top) == 8 and min(unigram[w] for w in top) >= max(unigram[w] for w in spellable - top)
    out_path = tmp_path / "top.arpa"
    argv = ["lm", "restrict", str(tmp_path / "lm.arpa"), "--out", str(out_path), "--model", str(untrained_model)]
    assert main([*argv, "--max-words", "8"]) == 0
    out = capsys.readouterr().out
    restricted = read_arpa(out_path)
    assert restricted.words == top
    assert "1 the model's tokens cannot spell removed (first: 'café')" in out
    assert f"{len(spellable) - 8} beyond the 8 most probable removed" in out
    assert_normalised(restricted, tolerance=1e-3)
    assert main([*argv, "--max-words", "0"]) == 2
    assert "--max-words must be at least 1" in capsys.readouterr().err


def test_lm_commands_name_the_file_they_cannot_use(tmp_path, capsys):
    text = tmp_path / "notes.txt"
    text.write_text("these are not\nn-grams\n")
    binary = tmp_path / "lm.bin"
    binary.write_bytes(b"mmap lm http://kheafield.com/code format version 5\x00\x01\x02")
    for argv, message in [
        (
            ["lm", "prune", str(tmp_path / "missing.arpa"), "--threshold", "1", "--out", str(tmp_path / "o.arpa")],
            "missing.arpa: no such file",
        ),
        (
            ["lm", "mix", str(text), str(text), "--weight", "0.5", "--out", str(tmp_path / "o.arpa")],
            "notes.txt: not an ARPA language model",
        ),
        (["lm", "lexicon", str(binary), "--out", str(tmp_path / "lex.txt")], "lm.bin: not an ARPA language model"),
        (["lm", "restrict", str(tmp_path / "nope.arpa"), "--out", str(tmp_path / "o.arpa")], "nope.arpa: no such file"),
    ]:
        assert main(argv) == 2
        assert message in capsys.readouterr().err
    broken = tmp_path / "broken.arpa"
    broken.write_text("\\data\\\nngram 1=2\n\n\\1-grams:\n-1.0\n")
    assert main(["lm", "prune", str(broken), "--threshold", "1", "--out", str(tmp_path / "o.arpa")]) == 2
    assert "broken.arpa:5: expected a 1-gram line" in capsys.readouterr().err
    assert not (tmp_path / "o.arpa").exists()
