"""Word cropping (``[augment] crop_prob``, ``crop_from_epoch``): training utterances cut to a
random run of their words, so the model learns that an utterance may start or end with any word,
not only the ones the training utterances start and end with.

The cuts between words come from the model being trained: from epoch ``crop_from_epoch`` on,
each epoch begins by aligning every multi-word training utterance that the model already
transcribes exactly (:func:`align_word_cuts`). With a probability of ``crop_prob`` an aligned
utterance is then cut to a random run of its words each time it is drawn (:class:`WordCrops`).
The cuts are kept in ``last.pt``, so a run resumed mid-epoch crops as the uninterrupted run did.
Cropping needs random access to the utterances: training from a manifest, not shards.
"""

from __future__ import annotations

import logging
import random
from typing import TYPE_CHECKING

import torch

from asr.data.dataset import SpeechDataset
from asr.data.text import Tokenizer, normalize_text
from asr.decode.align import align_words
from asr.decode.ctc import greedy_decode
from asr.model.acoustic import AcousticModel
from asr.train import distributed
from asr.train.distributed import DistributedContext
from asr.utils.errors import AsrError

if TYPE_CHECKING:  # asr.train.extensions builds this module's extension
    from asr.train.extensions import TrainingRun

log = logging.getLogger(__name__)


def crop_to_words(waveform: torch.Tensor, text: str, cuts: list[int], rng: random.Random) -> tuple[torch.Tensor, str]:
    """Cut ``waveform (N,)`` and its normalised ``text`` to a random run of consecutive words.

    ``cuts`` holds one sample position between each pair of neighbouring words
    (from a forced alignment).
    """
    words = text.split()
    if len(cuts) != len(words) - 1 or len(words) < 2:
        return waveform, text
    first = rng.randrange(len(words))
    last = rng.randrange(first + 1, len(words) + 1)  # exclusive
    start = 0 if first == 0 else cuts[first - 1]
    end = waveform.numel() if last == len(words) else cuts[last - 1]
    return waveform[start:end], " ".join(words[first:last])


class WordCrops:
    """A training set's ``edit``: ``(index, waveform (N,), text, rng) -> (waveform, text)``, an
    aligned utterance cropped with probability ``prob``. Small and picklable, as DataLoader
    workers get a copy of the dataset."""

    def __init__(self, prob: float):
        self.prob = prob
        self.cuts: dict[int, list[int]] = {}  # dataset index -> sample positions between its words

    def __call__(self, index: int, waveform: torch.Tensor, text: str, rng: random.Random) -> tuple[torch.Tensor, str]:
        if index in self.cuts and rng.random() < self.prob:
            return crop_to_words(waveform, text, self.cuts[index], rng)
        return waveform, text


def align_word_cuts(
    network: AcousticModel,
    dataset: SpeechDataset,
    tokenizer: Tokenizer,
    device: str,
    context: DistributedContext = DistributedContext(),
) -> dict[int, list[int]]:
    """The sample positions between the words of every multi-word utterance of ``dataset`` that
    ``network`` already transcribes exactly (greedy), by dataset index. A model that still gets
    an utterance wrong would misplace the cuts, and crops with the wrong words would undo
    training. Each process aligns its share of the utterances and all processes get every result."""
    hop = dataset.log_mel.config.hop_length * network.config.subsampling  # samples per output frame
    network.eval()
    cuts: dict[int, list[int]] = {}
    with torch.inference_mode():
        for index in context.share(range(len(dataset.utterances))):
            utt = dataset.utterances[index]
            text = normalize_text(utt.text)
            if len(text.split()) < 2 or utt.audio_filepath in dataset.failed:
                continue
            try:
                waveform = dataset.waveform(index)
            except AsrError:  # unreadable audio: the dataset names and skips it when it is drawn
                continue
            features = dataset.log_mel(waveform)  # (T, F)
            if dataset.speaker_normalization is not None:
                features = dataset.speaker_normalization(features, utt.speaker)
            features = features[None]  # (1, T, F)
            log_probs, lengths = network(features.to(device), torch.tensor([features.shape[1]], device=device))
            if greedy_decode(log_probs.cpu(), lengths.cpu(), tokenizer)[0] != text:
                continue
            spans = align_words(log_probs[0].cpu(), text, tokenizer)
            if len(spans) == len(text.split()):
                cuts[index] = [hop * (left.end + right.start) // 2 for left, right in zip(spans, spans[1:])]
    everything: dict[int, list[int]] = {}
    for part in distributed.gather(cuts, context):
        everything.update(part)
    return everything


class WordCropping:
    """The training extension (:mod:`asr.train.extensions`) of word cropping."""

    name = "word_crop"

    def __init__(self, prob: float, from_epoch: int):
        self.from_epoch = from_epoch
        self.crops = WordCrops(prob)

    def setup(self, run: TrainingRun) -> None:
        self.run = run
        run.train_set.edit = self.crops

    def start_epoch(self, epoch: int, resumed: bool) -> None:
        if epoch < self.from_epoch or resumed:  # a resumed epoch crops with the cuts it started with
            return
        run = self.run
        self.crops.cuts = align_word_cuts(run.network, run.train_set, run.tokenizer, run.device, run.context)
        log.info("epoch %d: %d utterances aligned for word cropping", epoch, len(self.crops.cuts))

    def state_dict(self) -> dict[int, list[int]]:
        return self.crops.cuts

    def load_state_dict(self, state: dict[int, list[int]] | None) -> None:
        self.crops.cuts = dict(state or {})
