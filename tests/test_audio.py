import numpy as np
import pytest
import soundfile
import torch

from asr.audio.io import load_audio
from asr.utils.errors import AudioError


@pytest.mark.parametrize(
    "fmt,subtype", [("WAV", "PCM_16"), ("FLAC", "PCM_16"), ("OGG", "VORBIS"), ("MP3", "MPEG_LAYER_III")]
)
def test_formats_rates_and_channels(tmp_path, fsdd_clips, fmt, subtype):
    """A stereo 44.1 kHz copy in any format comes back mono at the asked rate, close to the original."""
    original = load_audio(fsdd_clips / "5_nicolas_10.wav", 8000)
    stereo = torch.stack([original, original * 0.5], dim=1).numpy()  # (N, 2)
    import torchaudio.functional as AF

    upsampled = AF.resample(torch.from_numpy(stereo.T.copy()), 8000, 44100).T.numpy()
    path = tmp_path / f"clip.{fmt.lower()}"
    soundfile.write(path, upsampled, 44100, format=fmt, subtype=subtype)
    loaded = load_audio(path, 8000)
    assert loaded.ndim == 1 and loaded.dtype == torch.float32
    assert abs(loaded.numel() - original.numel()) < 0.06 * 8000  # codecs may pad a little
    if fmt in ("WAV", "FLAC"):
        expected = original * 0.75
        assert torch.corrcoef(torch.stack([loaded[: expected.numel()], expected]))[0, 1] > 0.99


def test_missing_corrupt_and_empty_files_name_the_file(tmp_path):
    with pytest.raises(AudioError, match="nope.wav: no such file"):
        load_audio(tmp_path / "nope.wav", 16000)
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF\x00\x00\x00\x00WAVEnot really audio" + bytes(range(256)))
    with pytest.raises(AudioError, match="corrupt.wav: cannot read audio"):
        load_audio(corrupt, 16000)
    empty = tmp_path / "empty.wav"
    soundfile.write(empty, np.zeros(0, dtype=np.float32), 16000)
    with pytest.raises(AudioError, match="empty.wav: the file holds no audio samples"):
        load_audio(empty, 16000)
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(AudioError, match="notes.txt: cannot read audio"):
        load_audio(text, 16000)


def test_segments_limits_and_impossible_rates(tmp_path, fsdd_clips):
    path = fsdd_clips / "5_nicolas_10.wav"
    whole = load_audio(path, 8000)
    segment = load_audio(path, 8000, offset=0.1, duration=0.2)
    assert torch.equal(segment, whole[800:2400])
    with pytest.raises(AudioError, match=r"5_nicolas_10.wav \[segment from 9 s\]: starts after the end of the file"):
        load_audio(path, 8000, offset=9.0, duration=1.0)
    with pytest.raises(AudioError, match="5_nicolas_10.wav: 0 minutes of audio, more than the 0 decoded in one piece"):
        load_audio(path, 8000, max_seconds=0.1)
    for rate in (1, 999, 10_000_000):
        odd = tmp_path / f"rate_{rate}.wav"
        soundfile.write(odd, whole.numpy(), 8000)
        data = bytearray(odd.read_bytes())
        data[24:28] = rate.to_bytes(4, "little")  # the fmt chunk's sample-rate field
        odd.write_bytes(bytes(data))
        with pytest.raises(AudioError, match=f"rate_{rate}.wav: the header claims a sample rate of {rate} Hz"):
            load_audio(odd, 8000)
