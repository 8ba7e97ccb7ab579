"""Streaming recognition: features, network and text as the audio arrives equal the whole-file ones."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest
import soundfile
import torch

from asr.audio.io import load_audio
from asr.cli.main import main
from asr.data.text import CharTokenizer
from asr.decode.ctc import DecoderConfig, build_decoder
from asr.features.logmel import FeatureConfig, LogMel
from asr.features.streaming import StreamingLogMel
from asr.inference.streaming import StreamingRecognizer, stream_results, transcribe_stream
from asr.inference.transcribe import transcribe_file
from asr.model.acoustic import AcousticModel, ModelConfig
from asr.model.checkpoint import MODEL_FILENAME, atomic_save, load_model, package, safe_load
from asr.model.streaming import StreamingNetwork
from asr.utils.errors import AsrError, ConfigError

CLIPS = ["3_theo_10.wav", "7_george_12.wav", "0_jackson_13.wav"]
STREAMING = ModelConfig(
    frontend="conv", subsampling=2, num_layers=2, hidden_size=32, bidirectional=False, lookahead_frames=2
)


def chunks(x: torch.Tensor, seed: int, most: int) -> list[torch.Tensor]:
    """``x`` cut along its first axis into pieces of 0 to ``most`` rows (empty ones included)."""
    rng, pieces, at = np.random.default_rng(seed), [], 0
    while at < len(x):
        size = int(rng.integers(0, most + 1))
        pieces.append(x[at : at + size])
        at += size
    return pieces


@pytest.fixture(scope="module")
def streaming_model(tmp_path_factory):
    """A packaged unidirectional model with 2 frames of look-ahead, random weights, global statistics."""
    torch.manual_seed(0)
    tokenizer = CharTokenizer()
    network = AcousticModel(len(tokenizer), FeatureConfig(sample_rate=8000, n_mels=40), STREAMING)
    network.normalizer.set_statistics(torch.linspace(-9, -4, 40), torch.linspace(1.5, 3, 40))
    folder = tmp_path_factory.mktemp("streaming_model")
    atomic_save(package(network, tokenizer, {"note": "untrained"}), folder / MODEL_FILENAME)
    return load_model(folder)


@pytest.mark.parametrize(
    "config", [FeatureConfig(sample_rate=8000, n_mels=40), FeatureConfig(), FeatureConfig(n_fft=401)]
)
def test_features_equal_the_whole_file_log_mel(fsdd_clips, config):
    audio = load_audio(fsdd_clips / CLIPS[0], config.sample_rate)
    whole = LogMel(config)(audio)  # (T, F)
    for seed, most in [(0, 1), (1, 37), (2, 800), (3, 20000)]:
        stream = StreamingLogMel(config)
        frames = [stream.accept(piece) for piece in chunks(audio[:3000] if most == 1 else audio, seed, most)]
        expected = LogMel(config)(audio[:3000]) if most == 1 else whole
        torch.testing.assert_close(torch.cat([*frames, stream.finish()]), expected, rtol=0, atol=1e-4)
    for length in (0, 1, config.fft_size // 2, config.fft_size // 2 + 1):  # shorter than the reflection
        stream = StreamingLogMel(config)
        got = torch.cat([stream.accept(audio[:length]), stream.finish()])
        assert got.shape == ((0, config.n_mels) if length == 0 else LogMel(config)(audio[:length]).shape)


def test_features_clamped_to_the_utterance_are_refused():
    with pytest.raises(AsrError, match="dynamic_range_db"):
        StreamingLogMel(FeatureConfig(dynamic_range_db=80.0))


@pytest.mark.parametrize(
    "config",
    [
        STREAMING,
        replace(STREAMING, subsampling=4, lookahead_frames=0, cell="gru"),
        replace(STREAMING, frontend="stack", subsampling=3, lookahead_frames=3),
    ],
)
def test_network_frames_equal_the_whole_utterance_network(fsdd_clips, config):
    torch.manual_seed(1)
    features = FeatureConfig(sample_rate=8000, n_mels=40)
    network = AcousticModel(len(CharTokenizer()), features, config).eval()
    for clip in CLIPS:
        log_mel = LogMel(features)(load_audio(fsdd_clips / clip, 8000))  # (T, F)
        with torch.inference_mode():
            whole = network(log_mel.unsqueeze(0), torch.tensor([len(log_mel)]))[0][0]  # (T', V)
        for seed, most in [(0, 1), (1, 5), (2, 1000)]:
            stream = StreamingNetwork(network)
            frames = [stream.accept(piece) for piece in chunks(log_mel, seed, most)]
            torch.testing.assert_close(torch.cat([*frames, stream.finish()]), whole, rtol=0, atol=1e-5)


def test_look_ahead_frames_do_not_depend_on_batch_mates():
    torch.manual_seed(2)
    network = AcousticModel(len(CharTokenizer()), FeatureConfig(sample_rate=8000, n_mels=40), STREAMING).eval()
    features, lengths = torch.randn(3, 57, 40), torch.tensor([57, 40, 13])
    with torch.inference_mode():
        batch, out_lengths = network(features, lengths)
        for row, (length, out_length) in enumerate(zip(lengths, out_lengths)):
            alone = network(features[row : row + 1, :length], length.view(1))[0][0]
            torch.testing.assert_close(batch[row, :out_length], alone, rtol=0, atol=1e-5)


def test_recognizer_audio_in_frames_out_equal_offline(streaming_model, fsdd_clips):
    """Audio chunks through features, network and greedy text: the whole-file network's frames."""
    audio = load_audio(fsdd_clips / CLIPS[1], 8000)
    with torch.inference_mode():
        log_mel = streaming_model.log_mel(audio)
        whole = streaming_model.network(log_mel.unsqueeze(0), torch.tensor([len(log_mel)]))[0][0]  # (T', V)
    recognizer = StreamingRecognizer(streaming_model, decoder=build_decoder(DecoderConfig(), streaming_model.tokenizer))
    for piece in chunks(audio, 3, 800):  # 0 to 100 ms
        recognizer.accept(piece)
    recognizer.finish()
    torch.testing.assert_close(torch.cat(recognizer.emissions), whole, rtol=0, atol=1e-5)


@pytest.mark.parametrize("rate", [8000, 16000, 22050])
def test_final_text_is_offline_greedy_and_partials_only_grow(streaming_model, fsdd_clips, tmp_path, rate):
    for clip in CLIPS:
        path = tmp_path / f"{rate}_{clip}"
        soundfile.write(path, load_audio(fsdd_clips / clip, rate).numpy(), rate)
        offline = transcribe_file(streaming_model, path).text
        audio = torch.from_numpy(soundfile.read(path, dtype="float32")[0])
        results = list(stream_results(StreamingRecognizer(streaming_model, rate), chunks(audio, 4, rate // 10)))
        *partials, final = results
        assert final.final and not any(p.final for p in partials)
        assert final.text == offline and final.seconds == pytest.approx(len(audio) / rate)
        assert len(partials) > 1 and final.text.startswith(partials[-1].text)  # the last frames come at the end
        for before, after in zip(partials, partials[1:]):
            assert after.text.startswith(before.text) and after.text != before.text
            assert after.seconds > before.seconds


def test_a_beam_decoder_gives_the_final_result(streaming_model, fsdd_clips):
    beam = build_decoder(DecoderConfig(kind="beam", beam_size=8), streaming_model.tokenizer)
    path = fsdd_clips / CLIPS[2]
    results = list(transcribe_stream(streaming_model, path, block_seconds=0.1, decoder=beam))
    assert results[-1].final and results[-1].text == transcribe_file(streaming_model, path, beam).text


def test_bidirectional_and_whole_utterance_normalisation_are_refused(untrained_model, streaming_model, fsdd_clips):
    with pytest.raises(AsrError, match="bidirectional"):
        StreamingRecognizer(load_model(untrained_model))
    with pytest.raises(AsrError, match="bidirectional"):
        transcribe_stream(load_model(untrained_model), fsdd_clips / CLIPS[0])
    network = AcousticModel(
        len(CharTokenizer()), FeatureConfig(sample_rate=8000, n_mels=40, normalization="utterance"), STREAMING
    )
    with pytest.raises(AsrError, match="whole utterance"):
        StreamingNetwork(network)
    with pytest.raises(ValueError, match="unidirectional"):
        ModelConfig(bidirectional=True, lookahead_frames=2)


def test_models_saved_before_the_look_ahead_field_still_load(untrained_model, tmp_path):
    data = safe_load(untrained_model / MODEL_FILENAME)
    del data["model_config"]["lookahead_frames"]
    atomic_save(data, tmp_path / MODEL_FILENAME)
    assert load_model(tmp_path).network.config.lookahead_frames == 0
    data["model_config"]["lookahead_frames"] = -1
    atomic_save(data, tmp_path / MODEL_FILENAME)
    with pytest.raises(ConfigError, match="lookahead_frames"):
        load_model(tmp_path)


@pytest.mark.parametrize("kind", ["wav", pytest.param("raw", marks=pytest.mark.slow)])
def test_asr_transcribe_stream_from_stdin_prints_partials_then_the_final_text(
    streaming_model, fsdd_clips, tmp_path, kind
):
    audio = load_audio(fsdd_clips / CLIPS[0], 16000).numpy()
    path = tmp_path / "clip.wav"
    soundfile.write(path, audio, 16000, subtype="PCM_16")
    if kind == "wav":
        data, rate_args = path.read_bytes(), []
    else:
        data, rate_args = soundfile.read(path, dtype="int16")[0].astype("<i2").tobytes(), ["--raw-rate", "16000"]
    command = [sys.executable, "-m", "asr", "transcribe", "--stream", "-", "--model", str(streaming_model.path)]
    done = subprocess.run([*command, *rate_args], input=data, capture_output=True, check=True)
    final = transcribe_file(streaming_model, path).text
    assert done.stdout.decode().splitlines() == [final]
    partials = [line for line in done.stderr.decode().splitlines() if line.startswith("partial ")]
    assert len(partials) >= 2 and partials[-1].split(": ", 1)[1] in final  # a partial only grows
    as_json = subprocess.run([*command, *rate_args, "-f", "json"], input=data, capture_output=True, check=True)
    results = [json.loads(line) for line in as_json.stdout.decode().splitlines()]
    assert [r["final"] for r in results] == [False] * (len(results) - 1) + [True] and results[-1]["text"] == final
    assert [r["seconds"] for r in results] == sorted(r["seconds"] for r in results)
    assert len(results) > 2 and results[-1]["seconds"] == pytest.approx(len(audio) / 16000, abs=1e-3)


def test_asr_transcribe_stream_refuses_what_needs_the_whole_file(streaming_model, fsdd_clips, capsys):
    clip = str(fsdd_clips / CLIPS[0])
    for extra, message in [(["-f", "srt"], "whole file"), ([clip], "one audio file"), (["--raw-rate", "8000"], "raw")]:
        assert main(["transcribe", "--stream", clip, *extra, "--model", str(streaming_model.path)]) == 2
        assert message in capsys.readouterr().err


def test_a_stream_that_is_not_wav_needs_a_rate_and_a_file_none(streaming_model, fsdd_clips):
    with pytest.raises(AsrError, match="not a WAV file"):
        transcribe_stream(streaming_model, io.BytesIO(b"\x00\x01" * 800))
    with pytest.raises(AsrError, match="raw PCM"):
        transcribe_stream(streaming_model, fsdd_clips / CLIPS[0], raw_rate=8000)
