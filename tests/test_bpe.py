"""sentencepiece BPE: pieces learnt from real transcripts, packaged inside the model, decoded greedily."""

import csv
import json

import pytest
import soundfile
import torch

from asr.data.dataset import Utterance, write_manifest
from asr.data.text import BLANK, BpeTokenizer, CharTokenizer, TokenizerConfig, build_tokenizer, normalize_text
from asr.decode.align import align_words
from asr.decode.ctc import greedy_decode
from asr.evaluation.evaluate import evaluate
from asr.features.augment import AugmentConfig
from asr.features.logmel import FeatureConfig
from asr.model.acoustic import AcousticModel, ModelConfig
from asr.model.checkpoint import MODEL_FILENAME, atomic_save, load_model, package
from asr.train.config import ExperimentConfig, TrainConfig, config_from_dict
from asr.train.loop import train
from asr.utils.errors import AsrError


@pytest.fixture(scope="module")
def ljspeech_texts(shared_data):
    """All 13,095 normalised LJ Speech sentences (the text is there even where the audio is not)."""
    metadata = shared_data / "ljspeech" / "LJSpeech-1.1" / "metadata.csv"
    with metadata.open(encoding="utf-8", newline="") as lines:
        return [normalize_text(row[2]) for row in csv.reader(lines, delimiter="|", quoting=csv.QUOTE_NONE)]


@pytest.fixture(scope="module")
def bpe(ljspeech_texts):
    return BpeTokenizer.train(ljspeech_texts[:10000], vocab_size=256)


def test_round_trip_on_real_transcripts(bpe, ljspeech_texts):
    assert len(bpe) == 257 and bpe.vocabulary[0] == BLANK and bpe.blank_id == 0
    held_out = ljspeech_texts[10000:]  # sentences the pieces were not learnt from
    pieces = characters = 0
    for text in held_out:
        ids = bpe.encode(text)
        assert ids.dtype == torch.long and (ids > 0).all()
        assert bpe.decode(ids) == text
        pieces += len(ids)
        characters += len(text)
    assert pieces < 0.5 * characters  # 256 pieces cover LJ Speech's words in well under half the tokens
    unk = bpe.vocabulary.index("<unk>")
    assert all(unk not in bpe.encode(text).tolist() for text in held_out)


def test_training_is_deterministic_and_tolerates_a_tiny_corpus(ljspeech_texts):
    assert (
        BpeTokenizer.train(ljspeech_texts[:500], 128).model_proto
        == BpeTokenizer.train(ljspeech_texts[:500], 128).model_proto
    )
    tiny = build_tokenizer(TokenizerConfig(kind="bpe", vocab_size=256), ["Yes, no!", "no yes"] * 5)
    assert len(tiny) < 257  # a soft limit: yes/no have few pieces
    assert tiny.decode(tiny.encode("zebra's yes")) == "zebra's yes"  # every character is a piece
    assert isinstance(build_tokenizer(TokenizerConfig(), ["x"]), CharTokenizer)
    with pytest.raises(AsrError, match="no transcript has any usable characters"):
        build_tokenizer(TokenizerConfig(kind="bpe"), ["?!", "..."])


def test_config_section():
    config = config_from_dict({"tokenizer": {"kind": "bpe", "vocab_size": 500}})
    assert config.tokenizer == TokenizerConfig(kind="bpe", vocab_size=500)
    with pytest.raises(AsrError, match="kind must be one of char, bpe"):
        config_from_dict({"tokenizer": {"kind": "wordpiece"}})
    with pytest.raises(AsrError, match="vocab_size must be at least 29"):
        config_from_dict({"tokenizer": {"kind": "bpe", "vocab_size": 28}})
    smallest = build_tokenizer(TokenizerConfig(kind="bpe", vocab_size=29), ["hello world"] * 5)
    assert len(smallest) == 30 and smallest.decode(smallest.encode("hello world")) == "hello world"


def one_hot(frames: list[int], vocab: int) -> torch.Tensor:
    """(T, V) log-probabilities with 0.9 on each frame's token id."""
    probs = torch.full((len(frames), vocab), 0.1 / (vocab - 1))
    probs[torch.arange(len(frames)), torch.tensor(frames)] = 0.9
    return probs.log()


def test_greedy_decode_and_alignment_join_pieces_into_words(bpe):
    text = "the printing press"
    ids = bpe.encode(text).tolist()
    assert len(ids) < len(text.replace(" ", ""))  # pieces, not characters
    frames = [0]
    for token in ids:  # each piece held two frames, blanks between; a doubled piece needs its blank
        frames += [token, token, 0]
    log_probs = one_hot(frames, len(bpe))
    assert greedy_decode(log_probs[None], torch.tensor([len(frames)]), bpe) == [text]
    spans = align_words(log_probs, text, bpe)
    assert [s.word for s in spans] == ["the", "printing", "press"]
    assert spans[0].start == 1 and spans[-1].end == len(frames) - 1
    assert all(a.end <= b.start for a, b in zip(spans, spans[1:]))


def test_packaged_bpe_model_saves_and_loads_safely(bpe, tmp_path):
    torch.manual_seed(0)
    network = AcousticModel(
        len(bpe), FeatureConfig(sample_rate=8000, n_mels=40), ModelConfig(hidden_size=16, num_layers=1)
    )
    atomic_save(package(network, bpe, {}), tmp_path / MODEL_FILENAME)
    raw = torch.load(tmp_path / MODEL_FILENAME, weights_only=True)
    assert raw["tokenizer"]["kind"] == "bpe" and raw["tokenizer"]["model"].dtype == torch.uint8
    model = load_model(tmp_path)
    assert isinstance(model.tokenizer, BpeTokenizer)
    assert model.tokenizer.vocabulary == bpe.vocabulary
    assert model.tokenizer.model_proto == bpe.model_proto
    assert model.network.output.out_features == len(bpe)
    raw["tokenizer"]["model"] = raw["tokenizer"]["model"][:100]  # damaged bytes: a clear error
    atomic_save(raw, tmp_path / "damaged.pt")
    with pytest.raises(AsrError, match="damaged.pt: .*BPE model"):
        load_model(tmp_path / "damaged.pt")


@pytest.mark.trains
def test_tiny_bpe_training_run_decodes_real_clips(shared_data, tmp_path):
    """Four real yesno recordings, BPE pieces (``\u2581yes``, ``\u2581no``): the model learns them."""
    folder = shared_data / "yesno" / "waves_yesno"
    names = sorted(p.stem for p in folder.glob("*.wav"))[:4]
    utts = [
        Utterance(
            str(folder / f"{n}.wav"),
            " ".join("yes" if b == "1" else "no" for b in n.split("_")),
            soundfile.info(str(folder / f"{n}.wav")).duration,
        )
        for n in names
    ]
    write_manifest(tmp_path / "clips.jsonl", utts)
    config = ExperimentConfig(
        features=FeatureConfig(sample_rate=8000, n_mels=40),
        augment=AugmentConfig(freq_masks=0, time_masks=0, crop_prob=0.3, crop_from_epoch=20),
        model=ModelConfig(frontend="stack", subsampling=4, num_layers=1, hidden_size=64, dropout=0.0),
        train=TrainConfig(epochs=40, batch_size=4, learning_rate=1e-2, warmup_steps=5, schedule="constant", seed=1),
        tokenizer=TokenizerConfig(kind="bpe", vocab_size=40),
    )
    result = train(config, tmp_path / "clips.jsonl", tmp_path / "clips.jsonl", tmp_path / "exp")
    assert result.best_dev_wer == 0.0
    model = load_model(tmp_path / "exp")
    assert isinstance(model.tokenizer, BpeTokenizer)
    assert "\u2581yes" in model.tokenizer.vocabulary and "\u2581no" in model.tokenizer.vocabulary
    summary = evaluate(model, tmp_path / "clips.jsonl", tmp_path / "eval")
    assert summary["wer"] == 0.0 and summary["num_utterances"] == 4
    hypotheses = [json.loads(line) for line in (tmp_path / "eval" / "hyp.jsonl").read_text().splitlines()]
    assert sorted(h["text"] for h in hypotheses) == sorted(u.text for u in utts)
    assert "[tokenizer]" in (tmp_path / "exp" / "config.toml").read_text()
    log = (tmp_path / "exp" / "train.log").read_text()
    assert "epoch 40: 4 utterances aligned for word cropping" in log  # BPE word alignment works too
