"""Speaker-adversarial training: gradient reversal, the masked frame loss, and training with it."""

from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F

from asr.data.dataset import Utterance, read_manifest, write_manifest
from asr.model.checkpoint import load_model, safe_load
from asr.speakers.adversary import UNLABELLED, SpeakerAdversary, reverse_gradient, speaker_ids
from asr.train.loop import train
from asr.utils.errors import AsrError
from tests.test_train import CLIPS, manifest, tiny_config, train_straight_and_resumed  # noqa: F401 (manifest: four clips by four speakers, a fixture)


def adversarial_config(epochs: int, weight: float = 0.5):
    config = tiny_config(epochs)
    return replace(config, train=replace(config.train, speaker_adversary_weight=weight, speaker_adversary_hidden=16))


def test_reversal_is_the_identity_forward_and_negates_the_scaled_gradient_backward():
    x = torch.tensor([1.0, -2.0, 3.0], requires_grad=True)
    y = reverse_gradient(x, 0.25)
    assert torch.equal(y, x.detach())
    (y * torch.tensor([4.0, 8.0, -12.0])).sum().backward()
    assert torch.allclose(x.grad, torch.tensor([-1.0, -2.0, 3.0]))


def test_loss_counts_only_valid_frames_of_labelled_utterances():
    torch.manual_seed(0)
    adversary = SpeakerAdversary(input_size=6, num_speakers=3, hidden_size=5, weight=1.0)
    encoded = torch.randn(3, 4, 6)  # (B, T', D)
    lengths = torch.tensor([4, 2, 3])
    speakers = torch.tensor([2, 0, UNLABELLED])
    loss, frames, correct = adversary.loss(encoded, lengths, speakers)
    logits = adversary.classifier(encoded)
    expected = F.cross_entropy(logits[0], torch.full((4,), 2), reduction="sum") + F.cross_entropy(
        logits[1, :2], torch.zeros(2, dtype=torch.long), reduction="sum"
    )
    assert frames == 6
    assert torch.allclose(loss, expected)
    named = int((logits[0].argmax(-1) == 2).sum() + (logits[1, :2].argmax(-1) == 0).sum())
    assert correct == named


def test_speaker_ids_are_sorted_names_and_unlabelled_utterances_are_skipped():
    utts = [Utterance("a.wav", "x", 1.0, speaker) for speaker in ("theo", None, "george", "theo")]
    ids, names = speaker_ids(utts)
    assert names == ["george", "theo"]
    assert ids.tolist() == [1, UNLABELLED, 0, 1]


@pytest.mark.trains
def test_training_with_the_adversary_resumes_exactly_and_ships_without_it(manifest, tmp_path):
    straight, resumed = train_straight_and_resumed(adversarial_config, manifest, tmp_path)
    adversary = straight["extensions"]["speaker_adversary"]
    assert set(adversary) == {"classifier.0.weight", "classifier.0.bias", "classifier.2.weight", "classifier.2.bias"}
    assert adversary["classifier.2.weight"].shape[0] == len(CLIPS)  # one output per speaker
    for key, value in adversary.items():
        assert torch.allclose(value, resumed["extensions"]["speaker_adversary"][key], atol=1e-6), key
    for key, value in straight["model"].items():
        assert torch.allclose(value, resumed["model"][key], atol=1e-6), key
    # The adversary trained the network: the same run without it ends elsewhere.
    train(adversarial_config(epochs=3, weight=0.0), manifest, manifest, tmp_path / "plain")
    plain = safe_load(tmp_path / "plain" / "last.pt")
    assert plain["extensions"] == {}
    assert not torch.allclose(plain["model"]["output.weight"], straight["model"]["output.weight"])
    packaged = load_model(tmp_path / "straight")  # the packaged model is the plain acoustic model
    assert not any("classifier" in key for key in safe_load(tmp_path / "straight" / "model.pt")["state_dict"])
    assert packaged is not None
    with pytest.raises(AsrError, match="started with the training extension.s. speaker_adversary"):
        train(adversarial_config(epochs=4, weight=0.0), manifest, manifest, tmp_path / "straight", resume=True)
    with pytest.raises(AsrError, match="this run started without speaker-adversarial training"):
        train(adversarial_config(epochs=4), manifest, manifest, tmp_path / "plain", resume=True)


def test_a_manifest_with_one_speaker_is_refused(manifest, tmp_path):
    utts = [replace(u, speaker="george") for u in read_manifest(manifest)]
    write_manifest(tmp_path / "one.jsonl", utts)
    with pytest.raises(AsrError, match="names 1 speaker"):
        train(adversarial_config(epochs=1), tmp_path / "one.jsonl", manifest, tmp_path / "exp")
