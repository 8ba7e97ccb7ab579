"""How much a model's recurrent outputs still tell speakers apart: a diagnostic probe.

A fresh classifier (one hidden layer) learns to name the speaker of every output frame of some of
each speaker's utterances, with the acoustic model frozen, and is scored on the frames of that
speaker's other utterances. Accuracy near the majority level means the outputs hold little
speaker information (what speaker-adversarial training, ``asr.speakers.adversary``, aims for); the same
probe on an untrained copy of the network (:func:`untrained_copy`) shows how much the features
themselves hold.
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from asr.data.dataset import SpeechDataset, Utterance
from asr.model.acoustic import AcousticModel
from asr.model.checkpoint import PackagedModel
from asr.speakers.normalization import normalize_speakers
from asr.utils.errors import AsrError


@dataclass
class ProbeConfig:
    max_utterances: int = 600  # a seeded sample of the labelled utterances, read and encoded once
    test_share: float = 0.3  # share of each speaker's sampled utterances held out to score the probe
    hidden_size: int = 128  # hidden units of the probe classifier
    steps: int = 1500  # probe training steps
    batch_frames: int = 512  # frames drawn for each step
    learning_rate: float = 3e-3  # AdamW learning rate of the probe
    seed: int = 0  # seed of the sample, the split and the probe's training

    def __post_init__(self):
        if not 0 < self.test_share < 1:
            raise AsrError("the speaker probe's test_share must be between 0 and 1")
        if min(self.max_utterances, self.hidden_size, self.steps, self.batch_frames) < 1:
            raise AsrError("the speaker probe's utterances, hidden size, steps and batch frames must be >= 1")


@dataclass
class ProbeResult:
    speakers: int  # speakers in the sample
    train_utterances: int  # utterances whose frames trained the probe
    test_utterances: int  # utterances whose frames scored it
    frame_accuracy: float  # held-out frames whose speaker the probe named
    utterance_accuracy: float  # held-out utterances named right by their frames' mean log-probabilities
    majority_accuracy: float  # held-out frames of the commonest speaker: the accuracy of always naming them


def untrained_copy(network: AcousticModel, seed: int = 0) -> AcousticModel:
    """A freshly initialised network of the same configuration, with ``network``'s normalisation
    statistics: the reference for what the features alone tell about speakers."""
    with torch.random.fork_rng():  # seed the initialisation without touching the caller's generator
        torch.manual_seed(seed)
        fresh = AcousticModel(network.output.out_features, network.feature_config, network.config)
    fresh.normalizer.load_state_dict(network.normalizer.state_dict())
    return fresh


def probe_speakers(
    model: PackagedModel,
    utterances: list[Utterance],
    config: ProbeConfig | None = None,
    network: AcousticModel | None = None,
) -> ProbeResult:
    """Train and score the probe on ``model``'s recurrent outputs (or on ``network``'s, with the
    model's features and tokenizer). Utterances without a speaker label are left out, and so are
    those whose audio cannot be read (the dataset names them)."""
    config = config or ProbeConfig()
    network = (network or model.network).eval()
    train_utts, test_utts = _split(utterances, config)
    names = sorted({u.speaker for u in train_utts})
    speaker_id = {name: i for i, name in enumerate(names)}
    train_x, train_y = _encode(network, model, train_utts, speaker_id)
    test_x, test_y = _encode(network, model, test_utts, speaker_id)
    if not train_x or not test_x:
        raise AsrError("the speaker probe found no readable utterances to train or to score it on")

    with torch.random.fork_rng():  # the probe's seed, without touching the caller's generator
        torch.manual_seed(config.seed)
        probe = _train_probe(torch.cat(train_x), torch.cat(train_y), len(names), config)
    with torch.no_grad():
        log_probs = [probe(x).log_softmax(-1) for x in test_x]  # each (T', S)
    right_frames = sum(int((lp.argmax(-1) == y).sum()) for lp, y in zip(log_probs, test_y))
    right_utts = sum(int(lp.mean(0).argmax()) == int(y[0]) for lp, y in zip(log_probs, test_y))
    test_labels = torch.cat(test_y)
    return ProbeResult(
        speakers=len(names),
        train_utterances=len(train_x),
        test_utterances=len(test_x),
        frame_accuracy=right_frames / len(test_labels),
        utterance_accuracy=right_utts / len(test_x),
        majority_accuracy=int(torch.bincount(test_labels).max()) / len(test_labels),
    )


def _train_probe(frames: torch.Tensor, labels: torch.Tensor, num_speakers: int, config: ProbeConfig) -> nn.Module:
    """A classifier ``(N, D) -> (N, num_speakers)`` trained on ``frames: (N, D)`` and their speaker
    ids ``labels: (N,)``."""
    probe = nn.Sequential(
        nn.Linear(frames.shape[1], config.hidden_size), nn.ReLU(), nn.Linear(config.hidden_size, num_speakers)
    )
    optimizer = torch.optim.AdamW(probe.parameters(), lr=config.learning_rate)
    for _ in range(config.steps):
        pick = torch.randint(0, len(frames), (config.batch_frames,))
        loss = F.cross_entropy(probe(frames[pick]), labels[pick])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return probe


def _split(utterances: list[Utterance], config: ProbeConfig) -> tuple[list[Utterance], list[Utterance]]:
    """A seeded sample of the labelled utterances, each speaker's cut into probe-training and test
    utterances."""
    labelled = [u for u in utterances if u.speaker is not None]
    rng = random.Random(config.seed)
    rng.shuffle(labelled)
    by_speaker: dict[str, list[Utterance]] = defaultdict(list)
    for utt in labelled[: config.max_utterances]:
        by_speaker[utt.speaker].append(utt)
    usable = {s: utts for s, utts in by_speaker.items() if len(utts) >= 2}
    if len(usable) < 2:
        raise AsrError(
            f"the speaker probe needs at least two speakers with two or more labelled utterances each "
            f'in its sample of {config.max_utterances}; found {len(usable)} (the manifest\'s "speaker" field)'
        )
    train, test = [], []
    for utts in usable.values():
        cut = min(len(utts) - 1, max(1, round(len(utts) * (1 - config.test_share))))
        train += utts[:cut]
        test += utts[cut:]
    return train, test


def _encode(
    network: AcousticModel, model: PackagedModel, utterances: list[Utterance], speaker_id: dict[str, int]
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Each readable utterance's recurrent outputs ``(T', D)`` and a speaker id per frame ``(T',)``,
    with the features normalised as the network was trained (per speaker, where it was)."""
    dataset = SpeechDataset(utterances, model.log_mel, model.tokenizer)
    normalize_speakers(dataset, network)
    outputs, labels = [], []
    with torch.no_grad():
        for index, utt in enumerate(utterances):
            item = dataset[index]
            if item is None:
                continue
            features = item[0].unsqueeze(0)  # (1, T, F)
            encoded, lengths = network.encode(features, torch.tensor([features.shape[1]]))
            outputs.append(encoded[0, : int(lengths[0])])
            labels.append(torch.full((int(lengths[0]),), speaker_id[utt.speaker]))
    return outputs, labels
