"""Unsupervised speaker adaptation: two-pass decoding with a per-speaker feature transform.

The first pass transcribes a speaker's audio with the model as it is. Then, with the network
frozen, an affine map of that speaker's normalised log-mel features, ``y = x A + b`` (``A`` a
full ``F x F`` matrix, or a scale per mel bin with ``diagonal``), starting at the identity, is
trained with CTC loss towards the first pass's transcripts, under the model's own training
augmentation (waveform perturbation, SpecAugment, as its stored config says); the second pass
decodes with it. This is the feature-space speaker adaptation of Kaldi's fMLLR, fitted by
gradient descent through the network instead of by HMM statistics. No reference transcript is
read.

The transform acts in the model's normalised feature space, reached from the features the
network is given through its fixed global statistics: ``x' = A((x - mean) / std) * std + mean``
is what the dataset hands to the network, which then computes ``(x' - mean) / std``. So it
needs a model whose normaliser has fixed statistics (``normalization = "global"``,
``"speaker"`` or ``"none"``).
"""

from __future__ import annotations

import dataclasses
import logging
from collections import defaultdict
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.data import DataLoader

from asr.data.dataset import SpeechDataset, Utterance, collate
from asr.features.augment import AugmentConfig, SpecAugment
from asr.inference.transcribe import transcribe_file
from asr.model.acoustic import AcousticModel
from asr.model.checkpoint import PackagedModel
from asr.speakers.normalization import ONE_SPEAKER, FeatureMap, for_one_speaker
from asr.utils.config import dataclass_from_dict
from asr.utils.errors import AsrError
from asr.utils.progress import progress as progress_bar

log = logging.getLogger(__name__)

FIXED_STATISTICS = ("global", "speaker", "none")  # normaliser modes the transform can sit behind


@dataclass(frozen=True)
class AdaptConfig:
    transform: str = "diagonal"  # "diagonal": a scale and a bias per mel bin; "full": F x F matrix and bias
    epochs: int = 20  # passes over the speaker's first-pass transcripts
    learning_rate: float = 3e-3  # Adam step size
    batch_size: int = 16  # utterances per update
    seed: int = 0  # seeds the batch order, the waveform perturbations and the masks

    def __post_init__(self):
        if self.transform not in ("diagonal", "full"):
            raise AsrError(f"adaptation transform must be 'diagonal' or 'full', not {self.transform!r}")
        if self.epochs < 1 or self.batch_size < 1 or self.learning_rate <= 0:
            raise AsrError("adaptation needs epochs >= 1, batch_size >= 1 and a positive learning rate")


class FeatureTransform(nn.Module):
    """Affine map of normalised features ``(..., F) -> (..., F)``; the identity when created."""

    def __init__(self, n_mels: int, kind: str):
        super().__init__()
        self.kind = kind
        self.scale = nn.Parameter(torch.eye(n_mels) if kind == "full" else torch.ones(n_mels))  # (F, F) or (F,)
        self.bias = nn.Parameter(torch.zeros(n_mels))  # (F,)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        scaled = features @ self.scale if self.kind == "full" else features * self.scale
        return scaled + self.bias


class SpeakerAdaptation:
    """``(features (T, F), speaker) -> features``: the dataset's speaker normalisation (if any),
    then the speaker's transform, when they have one (see the module)."""

    def __init__(self, transforms: dict[str, FeatureTransform], network: AcousticModel, base: FeatureMap | None = None):
        self.transforms = transforms  # speaker -> their fitted transform
        self.base = base
        self.mean = network.normalizer.mean.detach().cpu()  # (F,) the model's fixed statistics
        self.std = network.normalizer.std.detach().cpu()  # (F,)

    def __call__(self, features: torch.Tensor, speaker: str | None) -> torch.Tensor:
        if self.base is not None:
            features = self.base(features, speaker)
        transform = self.transforms.get(speaker)
        if transform is None:
            return features
        with torch.no_grad():
            return transform((features - self.mean) / self.std) * self.std + self.mean


def check_adaptable(network: AcousticModel) -> None:
    if network.normalizer.mode not in FIXED_STATISTICS:
        raise AsrError(
            f"speaker adaptation needs a model with fixed normalisation statistics "
            f"({', '.join(FIXED_STATISTICS)}); this one uses {network.normalizer.mode!r}"
        )


def training_augmentation(model: PackagedModel) -> AugmentConfig:
    """The augmentation the model was trained with (from its stored config; the defaults for a
    model that does not say)."""
    stored = model.metadata.get("config", {}).get("augment")
    return dataclass_from_dict(AugmentConfig, stored, f"{model.path} augment") if stored else AugmentConfig()


def adapt_speakers(
    model: PackagedModel,
    utterances: list[Utterance],
    transcripts: dict[int, str],
    config: AdaptConfig = AdaptConfig(),
    base: FeatureMap | None = None,
    progress: bool = False,
) -> SpeakerAdaptation:
    """One transform per speaker label, fitted on ``transcripts`` (utterance index -> the first
    pass's text) of that speaker's ``utterances``; ``base`` is the speaker normalisation the
    first pass used. Utterances with no speaker label or an empty transcript are left out."""
    check_adaptable(model.network)
    augment = training_augmentation(model)
    by_speaker: dict[str, list[Utterance]] = defaultdict(list)
    for index, text in transcripts.items():
        utt = utterances[index]
        if utt.speaker is not None and text.strip():
            by_speaker[utt.speaker].append(dataclasses.replace(utt, text=text))
    unlabelled = sum(utterances[i].speaker is None for i in transcripts)
    if unlabelled:
        log.warning("%d utterances have no speaker label: they are decoded without adaptation", unlabelled)
    transforms = {}
    for speaker, own in progress_bar(
        sorted(by_speaker.items()), desc="adapt", unit="speaker", enabled=progress, leave=False
    ):
        dataset = SpeechDataset(own, model.log_mel, model.tokenizer, augment=augment, seed=config.seed)
        dataset.speaker_normalization = base
        transforms[speaker] = fit_transform(model.network, dataset, augment, config)
        log.info("adapted to speaker %r on %d utterances", speaker, len(own))
    return SpeakerAdaptation(transforms, model.network, base)


def adapt_to_files(
    model: PackagedModel,
    paths: list[str],
    decoder,
    config: AdaptConfig = AdaptConfig(),
    base: FeatureMap | None = None,
    progress: bool = False,
) -> SpeakerAdaptation:
    """The transform for audio files that are all one speaker (``asr transcribe --adapt``), under the
    name :data:`asr.speakers.normalization.ONE_SPEAKER`: a first pass transcribes each file (long ones in
    their segments), and the transform is fitted to those transcripts. Files that cannot be read
    are left out here (the second pass names them)."""
    check_adaptable(model.network)
    segments = []
    for path in progress_bar(paths, desc="first pass", unit="file", enabled=progress, leave=False):
        try:
            transcript = transcribe_file(model, path, decoder, feature_map=for_one_speaker(base))
        except AsrError:
            continue
        segments += [
            Utterance(str(path), part.text, part.end - part.start, ONE_SPEAKER, offset=part.start)
            for part in transcript.segments
            if part.text
        ]
    if not segments:
        raise AsrError("--adapt: the first pass transcribed no speech in the files given")
    transcripts = {index: utt.text for index, utt in enumerate(segments)}
    return adapt_speakers(model, segments, transcripts, config, base, progress)


def fit_transform(
    network: AcousticModel, dataset: SpeechDataset, augment: AugmentConfig, config: AdaptConfig
) -> FeatureTransform:
    """Train a :class:`FeatureTransform` through the frozen ``network`` with CTC loss towards
    ``dataset``'s texts (the first pass's transcripts), with ``augment``'s SpecAugment on the
    transformed features (the dataset perturbs the waveforms itself, when it has ``augment``).
    Repeatable: ``config.seed`` fixes the batch order, the perturbations and the masks."""
    check_adaptable(network)
    transform = FeatureTransform(network.feature_config.n_mels, config.transform)
    loader = DataLoader(
        dataset,
        batch_size=config.batch_size,
        shuffle=True,
        collate_fn=collate,
        generator=torch.Generator().manual_seed(config.seed),
    )
    was_training, needs_grad = network.training, [p.requires_grad for p in network.parameters()]
    network.eval()  # dropout off; the masks stand in for the network's own SpecAugment
    network.requires_grad_(False)
    with torch.random.fork_rng():  # the masks draw from torch's global generator: seed it here only
        torch.manual_seed(config.seed)
        try:
            _fit(network, transform, SpecAugment(augment).train(), loader, config)
        finally:
            network.train(was_training)
            for parameter, needed in zip(network.parameters(), needs_grad):
                parameter.requires_grad_(needed)
    return transform.eval()


def _fit(
    network: AcousticModel, transform: FeatureTransform, masks: SpecAugment, loader: DataLoader, config: AdaptConfig
) -> None:
    """The optimisation loop of :func:`fit_transform`."""
    mean, std = network.normalizer.mean, network.normalizer.std  # (F,) the model's fixed statistics
    optimizer = torch.optim.Adam(transform.parameters(), lr=config.learning_rate)
    dataset = loader.dataset
    for epoch in range(config.epochs):
        dataset.set_epoch(epoch)
        for batch in loader:
            if batch is None:
                continue
            normalised = masks(transform((batch.features - mean) / std))  # (B, T, F)
            log_probs, lengths = network(normalised * std + mean, batch.feature_lengths)  # (B, T', V)
            loss = nn.functional.ctc_loss(
                log_probs.transpose(0, 1),
                batch.targets,
                lengths,
                batch.target_lengths,
                blank=dataset.tokenizer.blank_id,
                zero_infinity=True,
            )
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
