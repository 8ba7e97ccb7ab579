"""Per-speaker mean/variance normalisation (``[features] normalization = "speaker"``).

Each speaker's log-mel features are standardised by that speaker's own statistics, taken
over all of their utterances in the manifest being read (Kaldi's per-speaker CMVN). This
cancels what a voice and its microphone add to every frame (level, spectral tilt, channel
colour) from many utterances, not from the few hundred frames of one word, which would
also remove part of the word itself.

The model still carries global statistics (pooled over the training set), so it runs on
audio with no speaker label, such as ``asr transcribe FILE``. To share one network between
the two, a labelled speaker's features are mapped onto the global statistics before the
model's own normalisation: ``x' = (x - mean_s) / std_s * std_g + mean_g``, which the model
turns into ``(x - mean_s) / std_s``.

The statistics of a test speaker come from that speaker's test audio (no transcripts); the
statistics are over un-augmented features. ``asr transcribe --same-speaker`` pools the
statistics of all the files it is given.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import torch

from asr.audio.blocks import read_blocks
from asr.data.dataset import SpeechDataset
from asr.features.logmel import LogMel, RunningStatistics
from asr.model.acoustic import AcousticModel
from asr.utils.errors import AsrError
from asr.utils.progress import progress as progress_bar

log = logging.getLogger(__name__)

# (features (T, F), speaker or None) -> features: what a dataset applies before the network
FeatureMap = Callable[[torch.Tensor, str | None], torch.Tensor]

ONE_SPEAKER = "one speaker"  # the speaker of every file given to asr transcribe --same-speaker


def for_one_speaker(feature_map: FeatureMap | None) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """``feature_map`` for files that are all :data:`ONE_SPEAKER`: features ``(T, F)`` -> ``(T, F)``
    (the ``feature_map`` of :func:`asr.inference.transcribe.transcribe_file`)."""
    return None if feature_map is None else lambda features: feature_map(features, ONE_SPEAKER)


class SpeakerNormalization:
    """Maps a labelled speaker's features ``(T, F)`` onto the global statistics (see the module)."""

    def __init__(self, statistics: dict[str, RunningStatistics], network: AcousticModel):
        # speaker -> (mean (F,), std (F,)) of their un-augmented features
        self.statistics = {speaker: _mean_std(stats) for speaker, stats in statistics.items()}
        self.target_mean = network.normalizer.mean.detach().cpu()  # (F,) the model's global mean
        self.target_std = network.normalizer.std.detach().cpu()  # (F,) the model's global standard deviation

    def __call__(self, features: torch.Tensor, speaker: str | None) -> torch.Tensor:
        if speaker not in self.statistics:
            return features  # unlabelled: the model's global statistics apply as they are
        mean, std = self.statistics[speaker]
        return (features - mean) / std * self.target_std + self.target_mean


def _mean_std(stats: RunningStatistics) -> tuple[torch.Tensor, torch.Tensor]:
    mean, std = stats.result()
    return mean, std.clamp_min(1e-5)


def speaker_statistics(dataset: SpeechDataset, progress: bool = False) -> dict[str, RunningStatistics]:
    """Each labelled speaker's un-augmented features accumulated over all of their readable
    utterances in ``dataset`` (the audio stays cached in it)."""
    accumulators: dict[str, RunningStatistics] = {}
    for index, utt in enumerate(
        progress_bar(dataset.utterances, desc="speaker statistics", enabled=progress, leave=False, unit="utt")
    ):
        if utt.speaker is None:
            continue
        try:
            waveform = dataset.waveform(index)
        except AsrError:  # unreadable audio: the dataset names and skips it when it is drawn
            continue
        with torch.no_grad():
            features = dataset.log_mel(waveform)  # (T, F)
        accumulators.setdefault(utt.speaker, RunningStatistics(features.shape[-1])).add(features)
    return accumulators


def normalize_speakers(dataset: SpeechDataset, network: AcousticModel, progress: bool = False) -> None:
    """Give ``dataset`` the per-speaker mapping when ``network`` was configured for it
    (``normalization = "speaker"``); otherwise leave it as it is."""
    if network.normalizer.mode != "speaker":
        return
    statistics = speaker_statistics(dataset, progress)
    unlabelled = sum(utt.speaker is None for utt in dataset.utterances)
    if unlabelled:
        log.warning(
            "%d of %d utterances have no speaker label: they keep the model's global statistics",
            unlabelled,
            len(dataset.utterances),
        )
    dataset.speaker_normalization = SpeakerNormalization(statistics, network)


class SpeakerNormalizationSetup:
    """The training extension (see :mod:`asr.train.extensions`; this stage cannot import it, so the
    hooks are matched by name) of ``normalization = "speaker"``: once the model has its global
    statistics, the training and dev sets map each labelled speaker onto them."""

    name = "speaker_normalization"

    def setup(self, run) -> None:
        """``run``: an :class:`asr.train.extensions.TrainingRun` (training from a manifest)."""
        normalize_speakers(run.train_set, run.network, progress=run.context.is_main)
        normalize_speakers(run.dev_set, run.network, progress=run.context.is_main)


def one_speaker_normalization(
    paths: list[str], network: AcousticModel, log_mel: LogMel, block_seconds: float = 10.0
) -> SpeakerNormalization:
    """The mapping for audio files that are all one speaker (``asr transcribe --same-speaker``),
    by their pooled statistics; unreadable files are left out (transcription names them). The
    speaker's name in the mapping is :data:`ONE_SPEAKER`."""
    if network.normalizer.mode != "speaker":
        raise AsrError(
            f'--same-speaker needs a model trained with normalization = "speaker" (this one uses '
            f'"{network.normalizer.mode}")'
        )
    stats = RunningStatistics(network.feature_config.n_mels)
    for path in paths:
        try:
            for block in read_blocks(path, network.feature_config.sample_rate, block_seconds):
                if len(block):
                    with torch.no_grad():
                        stats.add(log_mel(block))
        except AsrError:
            continue
    return SpeakerNormalization({ONE_SPEAKER: stats} if stats.count else {}, network)
