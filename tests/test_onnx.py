"""ONNX export (float32 and int8) of packaged models, run by onnxruntime through the usual inference path."""

import csv
import json
from pathlib import Path

import pytest
import soundfile
import torch

pytest.importorskip("onnx", reason="the onnx package is not installed (pip install 'asr[onnx]')")
pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (pip install 'asr[onnx]')")

from asr.audio.io import load_audio  # noqa: E402
from asr.data.text import BpeTokenizer, CharTokenizer  # noqa: E402
from asr.decode.ctc import build_decoder  # noqa: E402
from asr.evaluation.evaluate import evaluate  # noqa: E402
from asr.features.logmel import FeatureConfig  # noqa: E402
from asr.inference.loading import load_inference_model  # noqa: E402
from asr.inference.onnx import OnnxNetwork, export_onnx, load_onnx_model  # noqa: E402
from asr.inference.transcribe import transcribe_file  # noqa: E402
from asr.model.acoustic import AcousticModel, ModelConfig  # noqa: E402
from asr.model.checkpoint import PackagedModel, load_model  # noqa: E402
from asr.utils.errors import AsrError  # noqa: E402

LJSPEECH = Path(__file__).resolve().parents[2] / "shared" / "data" / "ljspeech" / "LJSpeech-1.1"
DIGITS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
# float32 ONNX against torch, log-probabilities on the frames inside each utterance's length: the
# English model's largest difference on the FSDD clips below was about 2e-5
TOLERANCE = 2e-4


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """torch and onnxruntime (whose default is torch's number) on one thread: on a shared machine,
    threads that wait for each other spin, and two of them can take ten times as long as one."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def english():
    return load_model(None)


@pytest.fixture(scope="module")
def english_export(english, tmp_path_factory):
    folder = tmp_path_factory.mktemp("english_onnx")
    written = export_onnx(english, folder, int8=True)
    assert [p.name for p in written] == ["model.onnx", "model.int8.onnx"]
    return folder


def held_out_fsdd(fsdd_clips: Path) -> list[Path]:
    """The shipped model's FSDD test clips (file indices 0-1): it never trained on them."""
    return sorted(fsdd_clips.glob("*_[0-4].wav"))


def padded(model, paths: list[Path]) -> tuple[torch.Tensor, torch.Tensor]:
    features = [model.log_mel(load_audio(p, model.sample_rate)) for p in paths]
    return (torch.nn.utils.rnn.pad_sequence(features, batch_first=True), torch.tensor([len(f) for f in features]))


def test_export_folder_holds_everything_decoding_needs(english, english_export):
    config = json.loads((english_export / "config.json").read_text())
    assert config["models"] == {"fp32": "model.onnx", "int8": "model.int8.onnx"} and config["default"] == "int8"
    assert config["vocabulary"] == list(english.tokenizer.vocabulary)
    lm, lexicon = (Path(p).name for p in (english.decoder_config().lm, english.decoder_config().lexicon))
    assert config["decoder"]["lm"] == lm and config["decoder"]["lexicon"] == lexicon
    assert sorted(p.name for p in english_export.iterdir()) == sorted(
        ["config.json", lexicon, "model.int8.onnx", "model.onnx", lm]
    )
    assert (english_export / "model.int8.onnx").stat().st_size < 0.3 * (english_export / "model.onnx").stat().st_size
    shipped = load_onnx_model(english_export)
    decoder = shipped.decoder_config()
    assert decoder == english.decoder_config(lm=str(english_export / lm), lexicon=str(english_export / lexicon))
    assert torch.equal(shipped.network.normalizer.mean, english.network.normalizer.mean)
    assert torch.equal(shipped.network.normalizer.std, english.network.normalizer.std)


def test_float32_log_probs_match_torch_on_real_clips_in_padded_batches(english, english_export, fsdd_clips):
    onnx_model = load_onnx_model(english_export, precision="fp32")
    clips = held_out_fsdd(fsdd_clips)
    clips = sorted(clips, key=lambda p: soundfile.info(str(p)).frames)[::7]  # 15 clips, 0.2 to 1.3 s
    largest = 0.0
    with torch.inference_mode():
        for size in (1, 2, 5, 8):  # batches mixing short and long clips: padding up to 6x the shortest
            for first in range(0, len(clips), size):
                batch = clips[first : first + size][::-1]  # longest first, then shorter ones
                features, lengths = padded(english, batch)
                expected, expected_lengths = english.network(features, lengths)
                got, got_lengths = onnx_model.network(features, lengths)
                assert torch.equal(got_lengths, expected_lengths) and got.shape == expected.shape
                valid = torch.arange(got.shape[1])[None, :] < expected_lengths[:, None]
                largest = max(largest, (got - expected).abs()[valid].max().item())
                alone, _ = onnx_model.network(features[:1, : lengths[0]], lengths[:1])  # no batch mates
                assert (alone[0] - got[0, : expected_lengths[0]]).abs().max().item() < TOLERANCE
    assert largest < TOLERANCE


def test_torch_and_onnx_transcribe_files_alike_with_the_beam_decoder(english, english_export, fsdd_clips, tmp_path):
    onnx_model = load_inference_model(english_export / "model.onnx")
    assert isinstance(onnx_model.network, OnnxNetwork)
    decoders = {id(m): build_decoder(m.decoder_config(), m.tokenizer) for m in (english, onnx_model)}
    assert decoders[id(english)].config.kind == "beam"
    clips = held_out_fsdd(fsdd_clips)[::10]
    # a file longer than one segment (20 s): cut at pauses and run in padded batches of segments
    pieces, silence = [], torch.zeros(english.sample_rate // 3)
    for clip in held_out_fsdd(fsdd_clips)[:40]:
        pieces += [load_audio(clip, english.sample_rate), silence]
    long_file = tmp_path / "digits.wav"
    soundfile.write(long_file, torch.cat(pieces).numpy(), english.sample_rate)
    assert soundfile.info(str(long_file)).duration > 25
    heard = []  # files where the torch model heard words: the comparison must not be of empty transcripts
    for path in [*clips, long_file]:
        expected = transcribe_file(english, path, decoders[id(english)], timestamps=True)
        got = transcribe_file(onnx_model, path, decoders[id(onnx_model)], timestamps=True)
        assert got.text == expected.text
        assert got.words == expected.words and got.segments == expected.segments
        heard += [path] if expected.text else []
    # a short clip may decode to nothing (rounds five and six: 0_george_0)
    assert long_file in heard and len(heard) >= len(clips) - 1
    assert len(expected.segments) > 1


def manifest(fsdd_clips: Path, path: Path) -> Path:
    """The shipped model's test sets (recipes/english/README.md): the FSDD held-out clips (100 words)
    and, when ../shared has LJ Speech, its test passage LJ002-0100 ... 0200 (100 clips, 1,661 words)."""
    rows = [{"audio_filepath": str(p), "text": DIGITS[int(p.name[0])]} for p in held_out_fsdd(fsdd_clips)]
    if (LJSPEECH / "metadata.csv").is_file():
        with open(LJSPEECH / "metadata.csv", encoding="utf-8", newline="") as lines:
            for clip, _, text in csv.reader(lines, delimiter="|", quoting=csv.QUOTE_NONE):
                if clip.startswith("LJ002-") and 100 <= int(clip[6:]) <= 200:
                    rows.append({"audio_filepath": str(LJSPEECH / "wavs" / f"{clip}.wav"), "text": text})
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


@pytest.mark.slow
def test_int8_wer_is_within_half_a_point_of_float32(english_export, fsdd_clips, tmp_path):
    """``asr evaluate --model EXPORT`` with the model's beam decoder and word LM, float32 and int8.

    Measured with round sixteen's model: 38.05 % and 38.10 % on these 1,761 words (38.96 % with one
    weight scale per direction instead of per row). One word more or less flips easily: the
    difference on a set of this size moves by a few tenths of a point with the batching (int8
    activations are quantized per batch)."""
    test_set = manifest(fsdd_clips, tmp_path / "test.jsonl")
    summaries = {}
    for precision in ("fp32", "int8"):
        model = load_onnx_model(english_export, threads=1, precision=precision)
        summaries[precision] = evaluate(
            model, test_set, tmp_path / precision, model_path=str(model.path), decoder_config=model.decoder_config()
        )
    fp32, int8 = summaries["fp32"], summaries["int8"]
    assert fp32["num_failed"] == 0 and fp32["num_utterances"] == int8["num_utterances"] >= 100
    assert fp32["decoder"]["kind"] == "beam" and fp32["model"].endswith("model.onnx")
    assert int8["model"].endswith("model.int8.onnx")
    print(f"WER fp32 {100 * fp32['wer']:.2f}%, int8 {100 * int8['wer']:.2f}% ({fp32['num_words']} words)")
    assert abs(int8["wer"] - fp32["wer"]) <= 0.005


def test_the_loader_tells_exports_from_torch_models(english_export, tmp_path):
    torch_model = load_inference_model(None)
    assert isinstance(torch_model, PackagedModel) and isinstance(torch_model.network, AcousticModel)
    model = load_inference_model(english_export, threads=2)
    assert isinstance(model, PackagedModel) and model.path.name == "model.int8.onnx"
    assert model.network.session.get_session_options().intra_op_num_threads == 2
    assert load_onnx_model(english_export, precision="fp32").path.name == "model.onnx"
    assert load_inference_model(english_export / "model.onnx").path.name == "model.onnx"
    with pytest.raises(AsrError, match="not an asr ONNX export"):
        load_onnx_model(tmp_path)
    with pytest.raises(AsrError, match="inference only"):
        model.network.parameters()
    with pytest.raises(AsrError, match="already an ONNX export"):
        export_onnx(model, tmp_path / "again")


@pytest.mark.parametrize(
    "frontend,cell,bidirectional,normalization,bpe",
    [
        ("conv", "gru", True, "utterance", False),
        ("stack", "rnn", False, "utterance_mean", True),
        ("conv", "lstm", True, "speaker", False),
    ],
)
def test_other_architectures_export_exactly(frontend, cell, bidirectional, normalization, bpe, tmp_path):
    torch.manual_seed(0)
    tokenizer = (
        BpeTokenizer.train(["one two three four five six seven eight nine ten"] * 3, 40) if bpe else CharTokenizer()
    )
    features = FeatureConfig(sample_rate=8000, n_mels=40, normalization=normalization)
    config = ModelConfig(
        frontend=frontend,
        cell=cell,
        subsampling=4 if frontend == "conv" else 3,
        bidirectional=bidirectional,
        hidden_size=16,
        num_layers=2,
    )
    network = AcousticModel(len(tokenizer), features, config)
    network.normalizer.set_statistics(torch.randn(40), torch.rand(40) + 0.5)
    model = PackagedModel(network, tokenizer, {"note": "untrained"}, {"kind": "greedy"})
    if cell == "lstm":
        written = export_onnx(model, tmp_path, int8=True, fp32=False)  # int8 only
        assert [p.name for p in written] == ["model.int8.onnx"] and not (tmp_path / "model.onnx").exists()
        assert load_inference_model(tmp_path).path.name == "model.int8.onnx"
    else:
        with pytest.raises(AsrError, match="no int8"):
            export_onnx(model, tmp_path, int8=True)
    export_onnx(model, tmp_path)  # float32 only, over the same folder: a stale int8 file goes
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["config.json", "model.onnx"] + (["bpe.model"] if bpe else [])
    )
    loaded = load_inference_model(tmp_path)
    assert loaded.tokenizer.vocabulary == tokenizer.vocabulary and loaded.metadata == {"note": "untrained"}
    assert loaded.network.normalizer.mode == normalization
    with torch.inference_mode():
        for batch, frames in [(1, 1), (1, 7), (3, 50), (6, 333)]:
            x = torch.randn(batch, frames, 40)
            lengths = torch.randint(1, frames + 1, (batch,))
            lengths[0] = frames
            expected, expected_lengths = network(x, lengths)
            got, got_lengths = loaded.network(x, lengths)
            assert torch.equal(got_lengths, expected_lengths)
            valid = torch.arange(got.shape[1])[None, :] < expected_lengths[:, None]
            assert (got - expected).abs()[valid].max().item() < TOLERANCE


@pytest.mark.slow
def test_command_line_exports_and_transcribes_through_onnxruntime(untrained_model, fsdd_clips, tmp_path):
    """`asr export --onnx --int8`, then `asr transcribe --model EXPORT` and the API on the export:
    the float32 export gives the torch model's text; the int8 one runs by default."""
    import subprocess
    import sys

    import asr

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "asr", *map(str, args)], capture_output=True, text=True)

    export = tmp_path / "onnx"
    result = cli("export", "--model", untrained_model, "--out", export, "--onnx", "--int8")
    assert result.returncode == 0, result.stderr
    assert {"model.onnx", "model.int8.onnx", "config.json"} <= {p.name for p in export.iterdir()}
    clip = sorted(fsdd_clips.glob("*.wav"))[0]
    by_torch = cli("transcribe", clip, "--model", untrained_model, "--decoder", "greedy")
    by_onnx = cli("transcribe", clip, "--model", export / "model.onnx", "--decoder", "greedy")
    assert by_onnx.returncode == by_torch.returncode == 0, by_onnx.stderr
    assert by_onnx.stdout == by_torch.stdout
    recognizer = asr.load_model(export, kind="greedy")
    assert isinstance(recognizer.model.network, OnnxNetwork)  # the int8 file, the export's default
    assert recognizer.model.network.path.name == "model.int8.onnx"
