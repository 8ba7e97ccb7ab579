"""Beam search (flashlight, compared with torchaudio's ctc_decoder) on hand-built log-probabilities, and decoder settings."""

import logging
import math
import subprocess
import sys
from pathlib import Path

import pytest
import soundfile
import torch

from asr.data.text import CharTokenizer
from asr.decode.ctc import DecoderConfig, build_decoder, greedy_decode, resolve_decoder_config
from asr.decode.lm import build_lm
from asr.features.logmel import FeatureConfig
from asr.inference.subtitles import Cue, group_words, to_srt, to_vtt
from asr.inference.transcribe import Word
from asr.model.acoustic import AcousticModel, ModelConfig
from asr.model.checkpoint import load_model, package, store_decoder_settings
from asr.utils.errors import AsrError

TOKENIZER = CharTokenizer()


def emissions(frames: list[dict[str, float]]) -> tuple[torch.Tensor, torch.Tensor]:
    """One utterance: each frame gives probabilities to some tokens ("" is the blank);
    the rest of the mass is spread over the other tokens. -> ((1, T, V), (1,))"""
    rows = []
    for frame in frames:
        rest = (1.0 - sum(frame.values())) / (len(TOKENIZER) - len(frame))
        probs = torch.full((len(TOKENIZER),), rest)
        for token, p in frame.items():
            probs[TOKENIZER.blank_id if token == "" else TOKENIZER.vocabulary.index(token)] = p
        rows.append(probs.log())
    return torch.stack(rows)[None], torch.tensor([len(rows)])


BLANK = {"": 0.9}


def test_lexicon_beam_fixes_what_greedy_gets_wrong(tmp_path):
    # greedy reads "cst": 's' beats 'a' in the middle frame by a little
    log_probs, lengths = emissions([{"c": 0.9}, BLANK, {"s": 0.5, "a": 0.45}, BLANK, {"t": 0.9}, BLANK])
    assert greedy_decode(log_probs, lengths, TOKENIZER) == ["cst"]
    lexicon = tmp_path / "lexicon.txt"
    lexicon.write_text("cat\tc a t |\ncut\tc u t |\ncot\tc o t |\n")
    beam = build_decoder(DecoderConfig(kind="beam", lexicon=str(lexicon)), TOKENIZER)
    assert beam.decode(log_probs, lengths)[0][0].text == "cat"


def test_token_lm_fixes_a_misspelling_lexicon_free(tmp_path):
    # the acoustics slightly prefer "teh"; an LM over characters knows "the"
    log_probs, lengths = emissions([{"t": 0.9}, BLANK, {"e": 0.5, "h": 0.45}, BLANK, {"h": 0.5, "e": 0.45}, BLANK])
    assert greedy_decode(log_probs, lengths, TOKENIZER) == ["teh"]
    text = tmp_path / "text.txt"
    text.write_text("the cat\nthe dog\nthen the end\nthe\nother things\n" * 3)
    lm = build_lm([text], 4, tmp_path / "tokens.arpa", units="tokens").arpa
    no_lm = build_decoder(DecoderConfig(kind="beam"), TOKENIZER)
    assert no_lm.decode(log_probs, lengths)[0][0].text == "teh"
    with_lm = build_decoder(DecoderConfig(kind="beam", lm=str(lm), lm_weight=1.0), TOKENIZER)
    assert with_lm.decode(log_probs, lengths)[0][0].text == "the"


def test_word_lm_chooses_between_lexicon_words(tmp_path):
    # "red" and "rad" sound alike here; the word LM has only ever seen "red"
    log_probs, lengths = emissions([{"r": 0.9}, BLANK, {"a": 0.5, "e": 0.45}, BLANK, {"d": 0.9}, BLANK])
    text = tmp_path / "text.txt"
    text.write_text("red\nthe red car\nred red\n")
    built = build_lm(
        [text],
        2,
        tmp_path / "words.arpa",
        lexicon=tmp_path / "lexicon.txt",
        vocabulary_manifests=[_manifest(tmp_path, "rad")],
    )
    plain = DecoderConfig(kind="beam", lexicon=str(built.lexicon))
    assert build_decoder(plain, TOKENIZER).decode(log_probs, lengths)[0][0].text == "rad"
    with_lm = DecoderConfig(kind="beam", lexicon=str(built.lexicon), lm=str(built.arpa), lm_weight=1.0)
    nbest = build_decoder(with_lm.__class__(**{**with_lm.__dict__, "nbest": 2}), TOKENIZER).decode(log_probs, lengths)[
        0
    ]
    assert [h.text for h in nbest] == ["red", "rad"] and nbest[0].score > nbest[1].score


def test_word_lm_without_lexicon_gets_one_spelled_from_its_words(tmp_path, monkeypatch, caplog):
    # the same frames as test_word_lm_chooses_between_lexicon_words, the LM given alone
    log_probs, lengths = emissions([{"r": 0.9}, BLANK, {"a": 0.5, "e": 0.45}, BLANK, {"d": 0.9}, BLANK])
    text = tmp_path / "text.txt"
    text.write_text("red\nthe red car\nred red\n")
    lm = build_lm([text], 2, tmp_path / "words.arpa", vocabulary_manifests=[_manifest(tmp_path, "rad")]).arpa
    with caplog.at_level(logging.INFO, logger="asr.decode.ctc"):
        decoder = build_decoder(DecoderConfig(kind="beam", lm=str(lm), lm_weight=1.0), TOKENIZER)
    lexicon = Path(decoder.config.lexicon)
    assert (
        lexicon.parent == tmp_path and lexicon.name.startswith("words.arpa.") and lexicon.name.endswith(".lexicon.txt")
    )
    assert lexicon.read_text().splitlines() == ["car\tc a r |", "rad\tr a d |", "red\tr e d |", "the\tt h e |"]
    assert "is a word LM and no lexicon was given" in caplog.text and str(lexicon) in caplog.text
    assert decoder.decode(log_probs, lengths)[0][0].text == "red"
    # reused while newer than the LM (and not logged again in this process)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="asr.decode.ctc"):
        assert build_decoder(DecoderConfig(kind="beam", lm=str(lm)), TOKENIZER).config.lexicon == str(lexicon)
    assert not caplog.text
    # an LM in a folder that cannot be written: the lexicon goes to a temporary folder
    import asr.decode.ctc

    shared = tmp_path / "read_only"
    shared.mkdir()
    (shared / "words.arpa").write_text(lm.read_text())
    monkeypatch.setattr(asr.decode.ctc, "_writable", lambda folder: False)
    elsewhere = Path(build_decoder(DecoderConfig(kind="beam", lm=str(shared / "words.arpa")), TOKENIZER).config.lexicon)
    assert elsewhere.parent != shared and elsewhere.read_text() == lexicon.read_text()
    assert list(shared.iterdir()) == [shared / "words.arpa"]


def test_what_no_lexicon_can_fix_is_refused_saying_why(tmp_path):
    from asr.data.text import BpeTokenizer

    text = tmp_path / "text.txt"
    text.write_text("hello world\nyes no\n" * 10)
    words = build_lm([text], 2, tmp_path / "words.arpa").arpa
    bpe = BpeTokenizer.train(["hello world", "yes no"] * 20, vocab_size=40)
    with pytest.raises(AsrError, match="words.arpa: a word LM .* needs a character model"):
        build_decoder(DecoderConfig(kind="beam", lm=str(words)), bpe)
    greek = tmp_path / "greek.arpa"
    greek.write_text(
        "\\data\\\nngram 1=3\n\n\\1-grams:\n-1.0\t</s>\n-99\t<s>\n-0.1\tλόγος\n\n\\end\\\n", encoding="utf-8"
    )
    with pytest.raises(AsrError, match="greek.arpa: a word LM, and none of its 1 words can be spelled"):
        build_decoder(DecoderConfig(kind="beam", lm=str(greek)), TOKENIZER)


FSDD_TEST_CLIPS = ["0_george_0", "3_jackson_1", "5_nicolas_2", "7_theo_3", "9_yweweler_4", "8_george_4"]


def test_a_word_lm_alone_decodes_real_clips_as_with_its_lexicon_file(shared_data, tmp_path, caplog):
    """`asr evaluate --decoder beam --lm words.arpa` and the same with `--lexicon` from
    `asr lm lexicon`: the same words, on real FSDD test clips with the model that ships."""
    import json

    from asr.cli.main import main
    from asr.data.dataset import Utterance, write_manifest
    from asr.model.checkpoint import DEFAULT_MODEL

    clips = [shared_data / "fsdd" / "recordings" / f"{name}.wav" for name in FSDD_TEST_CLIPS]
    digits = "zero one two three four five six seven eight nine".split()
    write_manifest(
        tmp_path / "clips.jsonl",
        [Utterance(str(c), digits[int(c.name[0])], soundfile.info(str(c)).duration, None, c.stem) for c in clips],
    )
    text = tmp_path / "text.txt"  # sound-alike words beside the digits, which the LM makes less likely
    text.write_text(
        "one two three four five\nsix seven eight nine zero\nnine eight seven\nten\n"
        "the hero won a tree for the fire\nheaven ate a nun\n"
    )
    (tmp_path / "lm").mkdir()
    lm = build_lm([text], 2, tmp_path / "lm" / "words.arpa").arpa
    assert main(["lm", "lexicon", str(lm), "--out", str(tmp_path / "lexicon.txt"), "--model", str(DEFAULT_MODEL)]) == 0
    common = ["evaluate", "--manifest", str(tmp_path / "clips.jsonl"), "--decoder", "beam", "--lm", str(lm)]
    with caplog.at_level(logging.INFO, logger="asr.decode.ctc"):
        assert main([*common, "--out", str(tmp_path / "alone")]) == 0
    assert "is a word LM and no lexicon was given" in caplog.text
    assert main([*common, "--lexicon", str(tmp_path / "lexicon.txt"), "--out", str(tmp_path / "with")]) == 0
    decoded = {}
    for name in ("alone", "with"):
        rows = [json.loads(line) for line in (tmp_path / name / "hyp.jsonl").read_text().splitlines()]
        decoded[name] = {row["id"]: row["text"] for row in rows}
    assert decoded["alone"] == decoded["with"] and len(decoded["alone"]) == len(clips)
    vocabulary = set(text.read_text().split())
    assert all(set(words.split()) <= vocabulary for words in decoded["alone"].values())
    assert sum(decoded["alone"][c.stem] == digits[int(c.name[0])] for c in clips) >= 5
    summary = json.loads((tmp_path / "alone" / "summary.json").read_text())
    made = Path(summary["decoder"]["lexicon"])  # the report names the lexicon made
    assert made.parent == lm.parent and made.read_text() == (tmp_path / "lexicon.txt").read_text()


def test_tune_lm_stores_the_best_point_with_the_beam_it_was_tuned_at(shared_data, tmp_path, capsys):
    """`asr tune-lm` on real FSDD clips: one row per LM weight x word score, and the model then
    carries the best point together with the beam options given (``--beam-size-token`` included)."""
    import json
    import shutil

    from asr.cli.main import main
    from asr.data.dataset import Utterance, write_manifest
    from asr.model.checkpoint import DEFAULT_MODEL

    clips = [shared_data / "fsdd" / "recordings" / f"{name}.wav" for name in FSDD_TEST_CLIPS]
    digits = "zero one two three four five six seven eight nine".split()
    write_manifest(
        tmp_path / "clips.jsonl",
        [Utterance(str(c), digits[int(c.name[0])], soundfile.info(str(c)).duration, None, c.stem) for c in clips],
    )
    (tmp_path / "model" / "lm").mkdir(parents=True)
    shutil.copy(DEFAULT_MODEL, tmp_path / "model" / "model.pt")  # tuning rewrites the model it is given
    text = tmp_path / "text.txt"
    text.write_text("one two three four five\nsix seven eight nine zero\nthe hero won a tree\n")
    lm = build_lm([text], 2, tmp_path / "model" / "lm" / "words.arpa").arpa
    shipped = DEFAULT_MODEL.read_bytes()
    command = ["tune-lm", "--model", str(tmp_path / "model"), "--manifest", str(tmp_path / "clips.jsonl")]
    command += ["--lm", str(lm), "--lm-weights", "0,2", "--word-scores=-1,0", "--beam-size", "20"]
    assert main([*command, "--beam-size-token", "5", "--out", str(tmp_path / "table.json")]) == 0
    table = json.loads((tmp_path / "table.json").read_text())
    assert [(p["lm_weight"], p["word_score"]) for p in table["points"]] == [(0, -1), (0, 0), (2, -1), (2, 0)]
    best = min(table["points"], key=lambda p: p["wer"])
    assert "best" in capsys.readouterr().out
    stored = load_model(tmp_path / "model").decoder_config()
    assert (stored.kind, stored.lm, stored.beam_size, stored.beam_size_token) == ("beam", str(lm), 20, 5)
    assert (stored.lm_weight, stored.word_score) == (best["lm_weight"], best["word_score"])
    assert DEFAULT_MODEL.read_bytes() == shipped


def test_settings_resolve_model_then_command_line(tmp_path):
    stored = {"kind": "beam", "lm": "lm/words.arpa", "lexicon": "lm/lexicon.txt", "lm_weight": 0.7}
    config = resolve_decoder_config(stored, tmp_path, word_score=1.5)
    assert config.kind == "beam" and config.lm == str(tmp_path / "lm/words.arpa") and config.lm_weight == 0.7
    assert config.word_score == 1.5
    assert resolve_decoder_config(stored, tmp_path, kind="greedy").lm is None
    assert resolve_decoder_config(None, None, lm="x.arpa").kind == "beam"
    # another LM without a lexicon leaves the stored lexicon (made for the stored LM's words) behind
    assert resolve_decoder_config(stored, tmp_path, lm="other.arpa").lexicon is None
    assert resolve_decoder_config(stored, tmp_path, lm=str(tmp_path / "lm/words.arpa")).lexicon == str(
        tmp_path / "lm/lexicon.txt"
    )
    assert resolve_decoder_config(stored, tmp_path, lm="o.arpa", lexicon="o.txt").lexicon == "o.txt"
    with pytest.raises(AsrError, match="needs the beam decoder"):
        DecoderConfig(kind="greedy", lm="x.arpa")


def test_a_model_carries_its_decoder_settings(tmp_path):
    network = AcousticModel(len(TOKENIZER), FeatureConfig(n_mels=16), ModelConfig(hidden_size=8, num_layers=1))
    torch.save(package(network, TOKENIZER, {}), tmp_path / "model.pt")
    (tmp_path / "lm").mkdir()
    settings = {"kind": "beam", "lm": str(tmp_path / "lm" / "words.arpa"), "lm_weight": 0.3, "unk_score": -math.inf}
    store_decoder_settings(tmp_path, settings)
    model = load_model(tmp_path / "model.pt")
    assert model.decoder_settings["lm"] == "lm/words.arpa"  # relative: the folder can move
    config = model.decoder_config()
    assert config.lm == str(tmp_path / "lm" / "words.arpa") and config.lm_weight == 0.3


def test_subtitle_cues_group_words_into_readable_lines():
    words = [Word(f"word{i}", i * 0.5, i * 0.5 + 0.3) for i in range(12)] + [Word("late", 10.0, 10.4)]
    cues = group_words(words)
    assert all(len(c.text) <= 42 for c in cues) and cues[-1].text == "late"  # the pause starts a new cue
    assert " ".join(c.text for c in cues) == " ".join(w.word for w in words)
    srt = to_srt([Cue(0.0, 1.25, "hello"), Cue(3661.5, 3662.0, "again")])
    assert srt == "1\n00:00:00,000 --> 00:00:01,250\nhello\n\n2\n01:01:01,500 --> 01:01:02,000\nagain\n"
    assert to_vtt([Cue(0.0, 1.25, "hello")]) == "WEBVTT\n\n00:00:00.000 --> 00:00:01.250\nhello\n"


def test_transcribe_rejects_several_files_as_srt_without_a_folder(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "asr", "transcribe", "a.wav", "b.wav", "--model", str(tmp_path), "--format", "srt"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2 and "--output-dir" in result.stderr


def _manifest(folder, text):
    path = folder / "vocab.jsonl"
    path.write_text(f'{{"audio_filepath": "x.wav", "text": "{text}"}}\n')
    return path


def test_bpe_models_decode_lexicon_free_and_refuse_a_lexicon(tmp_path):
    from asr.data.text import BpeTokenizer

    texts = ["yes no yes", "no no yes", "yes yes no no"] * 20
    bpe = BpeTokenizer.train(texts, vocab_size=40)
    symbols = list(bpe.vocabulary)
    frames = []
    for piece in ["", "\u2581yes", "\u2581yes", "\u2581yes", "", "", "\u2581no", "\u2581no", "", ""]:
        probs = torch.full((len(symbols),), 0.1 / (len(symbols) - 1))
        probs[symbols.index(piece) if piece else 0] = 0.9
        frames.append(probs.log())
    log_probs, lengths = torch.stack(frames)[None], torch.tensor([len(frames)])
    text = tmp_path / "text.txt"
    text.write_text("\n".join(texts))
    lm = build_lm([text], 4, tmp_path / "pieces.arpa", units="tokens", tokenizer=bpe).arpa
    for config in (DecoderConfig(kind="beam"), DecoderConfig(kind="beam", lm=str(lm))):
        assert build_decoder(config, bpe).decode(log_probs, lengths)[0][0].text == "yes no"
    lexicon = tmp_path / "lexicon.txt"
    lexicon.write_text("yes\t\u2581yes\nno\t\u2581no\n")
    with pytest.raises(AsrError, match="needs a character model"):
        build_decoder(DecoderConfig(kind="beam", lexicon=str(lexicon)), bpe)


def test_beam_search_matches_torchaudios_ctc_decoder(tmp_path):
    """The decoder is built on flashlight directly; torchaudio's ctc_decoder over the same files is
    the reference: the same words and scores on random emissions, with a lexicon and a word LM,
    and lexicon-free with a token LM."""
    from flashlight.lib.text.decoder.kenlm import KenLM
    from flashlight.lib.text.dictionary import Dictionary
    from torchaudio.models.decoder import ctc_decoder

    from asr.decode.lm import token_symbols, write_lexicon

    text = tmp_path / "text.txt"
    text.write_text("the cat sat on the mat\na cat and a dog\nthe dog sat\non a mat the cat ran\n" * 2)
    words_lm = build_lm([text], 3, tmp_path / "words.arpa").arpa
    tokens_lm = build_lm([text], 4, tmp_path / "tokens.arpa", units="tokens").arpa
    lexicon = tmp_path / "lexicon.txt"
    write_lexicon(lexicon, ["the", "cat", "sat", "on", "mat", "a", "and", "dog", "ran"], TOKENIZER)
    generator = torch.Generator().manual_seed(0)
    log_probs = torch.randn(3, 40, len(TOKENIZER), generator=generator).mul(2).log_softmax(-1)
    lengths = torch.tensor([40, 31, 17])
    symbols = token_symbols(TOKENIZER)
    settings = {"lm_weight": 0.8, "word_score": -0.5, "beam_size": 5, "beam_threshold": 15.0}
    for lm, lexicon_file, tokens_per_frame in ((words_lm, lexicon, 0), (tokens_lm, None, 0), (words_lm, lexicon, 3)):
        config = DecoderConfig(
            kind="beam",
            lm=str(lm),
            lexicon=str(lexicon_file) if lexicon_file else None,
            beam_size_token=tokens_per_frame,
            **settings,
        )
        ours = build_decoder(config, TOKENIZER)
        if lexicon_file:
            reference_lm = str(lm)
        else:  # a token LM's word i must be token i: torchaudio's own word dictionary for a path is in hash order
            reference_lm = KenLM(str(lm), Dictionary([*symbols, "<unk>"]))
        reference = ctc_decoder(
            lexicon=config.lexicon,
            tokens=symbols,
            lm=reference_lm,
            beam_size=5,
            beam_size_token=tokens_per_frame or None,
            beam_threshold=15.0,
            lm_weight=0.8,
            word_score=-0.5,
            sil_score=0.0 if lexicon_file else -0.5,  # lexicon-free, the boundary carries the word score
            blank_token=symbols[TOKENIZER.blank_id],
            sil_token="|",
            unk_word="<unk>",
        )
        emissions_in = log_probs
        if lexicon_file:  # what BeamSearchDecoder feeds flashlight: one frame certain of "|" at each row's end
            emissions_in, lengths_in = ours._append_boundary_frame(log_probs, lengths)
        else:
            lengths_in = lengths
        expected = reference(emissions_in.contiguous(), lengths_in.to(torch.int32))
        got = ours.decode(log_probs, lengths)
        for mine, theirs in zip(got, expected):
            if lexicon_file:
                assert mine[0].text == " ".join(theirs[0].words)
            else:
                assert mine[0].text == " ".join(TOKENIZER.decode(theirs[0].tokens).split())
            assert mine[0].score == pytest.approx(theirs[0].score, abs=1e-4)
        assert any(hypotheses[0].text for hypotheses in got), "the comparison needs words to compare"


def test_a_lexicon_the_model_cannot_read_is_refused_naming_the_line(tmp_path):
    no_spelling = tmp_path / "no_spelling.txt"
    no_spelling.write_text("cat\tc a t |\nlonely\n")
    with pytest.raises(AsrError, match=r"no_spelling.txt, line 2: 'lonely' has no spelling"):
        build_decoder(DecoderConfig(kind="beam", lexicon=str(no_spelling)), TOKENIZER)
    binary = tmp_path / "binary.txt"
    binary.write_bytes(b"cat\tc a t |\n\xff\xfe\x00\x01\n")
    with pytest.raises(AsrError, match=r"binary.txt: not UTF-8 text"):
        build_decoder(DecoderConfig(kind="beam", lexicon=str(binary)), TOKENIZER)
    foreign = tmp_path / "foreign.txt"
    foreign.write_text("cat\tc a t |\nnaive\tn a \u00ef v e |\n")
    with pytest.raises(AsrError, match=r"foreign.txt: 'naive' is spelled with '\u00ef', not one of the model's tokens"):
        build_decoder(DecoderConfig(kind="beam", lexicon=str(foreign)), TOKENIZER)


def test_a_lexicon_is_read_once_per_version_of_the_file(tmp_path, monkeypatch):
    import asr.decode.ctc

    opened = []  # the files asr.decode.ctc opens
    monkeypatch.setattr(
        asr.decode.ctc, "open", lambda path, *a, **k: opened.append(str(path)) or open(path, *a, **k), raising=False
    )
    log_probs, lengths = emissions([{"c": 0.9}, BLANK, {"s": 0.5, "a": 0.45}, BLANK, {"t": 0.9}, BLANK])
    text = tmp_path / "text.txt"
    text.write_text("cat\ncut\ncot\n")
    lm = build_lm([text], 2, tmp_path / "words.arpa").arpa
    lexicon = tmp_path / "lexicon.txt"
    lexicon.write_text("cat\tc a t |\ncut\tc u t |\ncot\tc o t |\n")
    config = DecoderConfig(kind="beam", lexicon=str(lexicon), lm=str(lm), lm_weight=0.5)
    # the LM check and the trie share one read; a second decoder over the same files reads nothing
    assert build_decoder(config, TOKENIZER).decode(log_probs, lengths)[0][0].text == "cat"
    assert build_decoder(config, TOKENIZER).decode(log_probs, lengths)[0][0].text == "cat"
    assert opened.count(str(lexicon)) == 1
    # an edited lexicon is read again, not served from the cache
    lexicon.write_text("cut\tc u t |\n")
    assert build_decoder(config, TOKENIZER).decode(log_probs, lengths)[0][0].text == "cut"
    assert opened.count(str(lexicon)) == 2
