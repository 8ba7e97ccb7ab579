"""Streaming recognition: latency of the partial results, real-time factor, and WER against a
bidirectional model.

    python benchmarks/streaming.py --model exp/yesno_streaming --bidirectional exp/yesno \\
        --manifest data/yesno/test.jsonl --streams utterances [--threads 1] [--chunk-ms 100] [--out result.json]

**Streams.** ``--streams utterances`` (words separated by pauses, as in yesno): each test
utterance is a stream, and word ``i`` ends at ``e_i``, the end of the ``i``-th stretch of sound
(:func:`asr.audio.pauses.sound_spans`); an utterance whose stretches do not number its words
(two words ran together) gives no latencies, only its text. ``--streams joined`` (one-word clips
trimmed to the word, as in FSDD): the test clips of each speaker, in manifest order, are joined
``--words`` at a time, each after ``--gap`` seconds of faint noise, and word ``i`` ends where
clip ``i`` ends. Each stream goes through :class:`asr.inference.streaming.StreamingRecognizer`
in chunks of ``--chunk-ms``.

**Time.** Chunk ``k`` (from 0) holds the audio up to ``a_k = (k + 1) * chunk`` seconds and is
available at ``a_k`` on the stream's clock, as from a microphone. The recognizer starts it at
``s_k = max(a_k, d_{k-1})`` (when it is free) and has its partial at ``d_k = s_k + c_k``, ``c_k``
being the measured compute time of ``accept`` (for the last chunk, ``accept`` and ``finish``).
Nothing sleeps: the clock is simulated from the measured compute, which is exact as long as
the machine runs nothing else between chunks, as a real-time run would leave it idle.

**Latency of word i** = ``d_k - e_i`` for the first chunk ``k`` whose result has at least
``i + 1`` words and whose word ``i`` is the reference word ``i`` (the final result counts for
the last chunk): how long after the word's audio has ended its first correct partial is out.
It includes the wait for the chunk holding the word's end (up to one chunk), the audio the
features and the look-ahead need, the network's own delay in emitting the word, and the
compute. A word that never appears correctly is a *miss* and has no latency. **First-partial
latency** is that of word 0 of each stream (the goal: at most 300 ms). *First text* is
``d_k - e_0`` for the first result with any text at all (negative: before the word ended).

The streams' WER scores each stream's final (greedy) text against its words.

**RTF** = the summed compute (wall clock) over all chunks / the streams' audio seconds; *CPU RTF*
the same with the process's CPU time, which a loaded machine inflates less. One torch thread by
default: a chunk is a few milliseconds of small matrix products, where a second intra-op thread
only adds synchronisation (on this shared 2-core machine at load 10, 2 threads ran 15x slower).

**WER.** Every test utterance on its own, through the recognizer (final result, greedy and,
when the model stores one, its tuned decoder) and through the bidirectional model offline,
with the same decoders. For a model trained with ``normalization = "speaker"`` both ways are
scored twice: each test speaker by their own statistics, as ``asr evaluate`` does, and
unlabelled (the training set's statistics, as ``asr transcribe`` has it for an unknown voice);
the streams use the speakers' statistics.

The machine's load average is printed first; the figures are from a shared machine when it is not ~0.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from asr.audio.pauses import sound_spans
from asr.data.dataset import SpeechDataset, Utterance, read_manifest
from asr.data.text import normalize_text
from asr.decode.ctc import GreedyDecoder, build_decoder
from asr.evaluation.metrics import error_counts
from asr.inference.streaming import StreamingRecognizer
from asr.model.checkpoint import PackagedModel, load_model
from asr.speakers.normalization import SpeakerNormalization, speaker_statistics


def decoders(model: PackagedModel) -> dict[str, object]:
    """ "greedy", and "stored" when the model carries tuned decoder settings (beam, LM, lexicon)."""
    found = {"greedy": GreedyDecoder(model.tokenizer)}
    config = model.decoder_config()
    if config.kind != "greedy":
        found["stored"] = build_decoder(config, model.tokenizer)
    return found


def feature_maps(model: PackagedModel, utterances: list[Utterance]) -> dict[str, SpeakerNormalization | None]:
    """Normalisation conditions: "unlabelled" always, "speaker" for a per-speaker model."""
    maps: dict[str, SpeakerNormalization | None] = {"unlabelled": None}
    if model.network.normalizer.mode == "speaker":
        dataset = SpeechDataset(utterances, model.log_mel, model.tokenizer)
        maps["speaker"] = SpeakerNormalization(speaker_statistics(dataset), model.network)
    return maps


def one_speaker(normalization: SpeakerNormalization | None, speaker: str | None):
    """``normalization`` for one speaker's features ``(T, F)``, or None."""
    return None if normalization is None else (lambda features: normalization(features, speaker))


def chunked(audio: torch.Tensor, size: int) -> list[torch.Tensor]:
    return [audio[at : at + size] for at in range(0, len(audio), size)]


@torch.inference_mode()
def streaming_texts(
    model: PackagedModel, utterances: list[Utterance], audio: list[torch.Tensor], normalization, chunk: int
) -> dict[str, list[str]]:
    """Each utterance through the recognizer: final texts by decoder name."""
    found = decoders(model)
    texts: dict[str, list[str]] = {name: [] for name in found}
    for utt, samples in zip(utterances, audio):
        recognizer = StreamingRecognizer(
            model, decoder=found.get("stored"), feature_map=one_speaker(normalization, utt.speaker)
        )
        for piece in chunked(samples, chunk):
            recognizer.accept(piece)
        final = recognizer.finish()
        texts["greedy"].append(recognizer.text)  # greedy over all frames, whatever the final decoder
        if "stored" in texts:
            texts["stored"].append(final.text)
    return texts


@torch.inference_mode()
def offline_texts(
    model: PackagedModel, utterances: list[Utterance], audio: list[torch.Tensor], normalization
) -> dict[str, list[str]]:
    """Each utterance through the network in one piece: texts by decoder name."""
    found = decoders(model)
    texts: dict[str, list[str]] = {name: [] for name in found}
    for utt, samples in zip(utterances, audio):
        features = model.log_mel(samples)  # (T, F)
        if normalization is not None:
            features = normalization(features, utt.speaker)
        log_probs, lengths = model.network(features.unsqueeze(0), torch.tensor([len(features)]))
        for name, decoder in found.items():
            texts[name].append(decoder.decode(log_probs, lengths)[0][0].text)
    return texts


def streams(utterances: list[Utterance], audio: list[torch.Tensor], words: int, gap: float, rate: int):
    """Same-speaker clips joined ``words`` at a time, each after ``gap`` seconds of faint noise:
    (speaker, samples, reference words, word ends (s))."""
    rng = np.random.default_rng(0)
    by_speaker: dict[str | None, list[int]] = {}
    for index, utt in enumerate(utterances):
        by_speaker.setdefault(utt.speaker, []).append(index)
    for speaker, indices in by_speaker.items():
        for first in range(0, len(indices) - words + 1, words):
            parts, ends, references, at = [], [], [], 0
            for index in indices[first : first + words]:
                pause = torch.from_numpy(rng.normal(0, 3e-4, round(gap * rate)).astype(np.float32))
                parts += [pause, audio[index]]
                at += len(pause) + len(audio[index])
                ends.append(at / rate)
                references += normalize_text(utterances[index].text).split()
            yield speaker, torch.cat(parts), references, ends


def utterance_streams(utterances: list[Utterance], audio: list[torch.Tensor], rate: int):
    """Each utterance as a stream: (speaker, samples, reference words, word ends (s), or None
    when its stretches of sound do not number its words)."""
    for utt, samples in zip(utterances, audio):
        references = normalize_text(utt.text).split()
        ends = [end for _, end in sound_spans(samples, rate)]
        yield utt.speaker, samples, references, ends if len(ends) == len(references) else None


@torch.inference_mode()
def timed_stream(model: PackagedModel, samples: torch.Tensor, feature_map, chunk: int) -> tuple[list, float, float]:
    """Feed one stream in real time on a simulated clock: [(d_k, text_k)], the summed compute
    (wall seconds) and the CPU seconds it took."""
    recognizer = StreamingRecognizer(model, feature_map=feature_map)
    rate, free, results, compute = model.sample_rate, 0.0, [], 0.0
    pieces = chunked(samples, chunk)
    cpu = time.process_time()
    for k, piece in enumerate(pieces):
        arrival = min((k + 1) * chunk, len(samples)) / rate
        started = time.perf_counter()
        result = recognizer.accept(piece)
        if k == len(pieces) - 1:
            result = recognizer.finish()
        spent = time.perf_counter() - started
        compute += spent
        free = max(arrival, free) + spent
        results.append((free, result.text))
    return results, compute, time.process_time() - cpu


def word_latencies(results: list, references: list[str], ends: list[float]) -> list[float | None]:
    """Per reference word, ``d_k - e_i`` of its first correct result (None: never correct)."""
    latencies: list[float | None] = []
    for i, (word, end) in enumerate(zip(references, ends)):
        done = next((at for at, text in results if len(text.split()) > i and text.split()[i] == word), None)
        latencies.append(None if done is None else done - end)
    return latencies


def summary(values: list[float]) -> dict[str, float]:
    """Mean, median, 90th percentile and maximum of ``values`` (seconds) in milliseconds."""
    if not values:
        return {"count": 0}
    ms = sorted(1000 * v for v in values)
    return {
        "mean_ms": round(statistics.fmean(ms), 1),
        "median_ms": round(statistics.median(ms), 1),
        "p90_ms": round(ms[int(0.9 * (len(ms) - 1))], 1),
        "max_ms": round(ms[-1], 1),
        "count": len(ms),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="the streaming model (model.pt or its experiment folder)")
    parser.add_argument("--bidirectional", help="a bidirectional model to compare WER with")
    parser.add_argument("--manifest", required=True, help="test utterances (JSON lines)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--chunk-ms", type=float, default=100.0, help="audio per chunk fed")
    parser.add_argument(
        "--streams",
        choices=["utterances", "joined"],
        default="utterances",
        help="each utterance a stream, or one-word clips joined --words at a time",
    )
    parser.add_argument("--words", type=int, default=5, help="clips joined into one stream")
    parser.add_argument("--gap", type=float, default=0.3, help="seconds of faint noise before each joined clip")
    parser.add_argument("--out", type=Path, help="write the figures here as JSON too")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    report = {
        "load_average": os.getloadavg(),
        "cpu": platform.processor() or platform.machine(),
        "threads": args.threads,
        "chunk_ms": args.chunk_ms,
    }
    print(f"load average {report['load_average']}, {args.threads} torch threads, chunks of {args.chunk_ms:g} ms")

    model = load_model(args.model)
    utterances = read_manifest(args.manifest)
    audio = [utt.load(model.sample_rate) for utt in utterances]
    chunk = round(args.chunk_ms / 1000 * model.sample_rate)
    maps = feature_maps(model, utterances)

    latencies, first_words, first_texts, compute, cpu, seconds, misses = [], [], [], 0.0, 0.0, 0.0, 0
    stream_references, stream_finals, unmeasured = [], [], 0
    stream_map = maps.get("speaker")
    if args.streams == "joined":
        made = streams(utterances, audio, args.words, args.gap, model.sample_rate)
    else:
        made = utterance_streams(utterances, audio, model.sample_rate)
    for speaker, samples, references, ends in made:
        results, spent, used = timed_stream(model, samples, one_speaker(stream_map, speaker), chunk)
        compute, cpu, seconds = compute + spent, cpu + used, seconds + len(samples) / model.sample_rate
        stream_references.append(" ".join(references))
        stream_finals.append(results[-1][1])
        if ends is None:
            unmeasured += 1
            continue
        found = word_latencies(results, references, ends)
        latencies += [v for v in found if v is not None]
        misses += sum(v is None for v in found)
        if found[0] is not None:
            first_words.append(found[0])
        first_text = next((at for at, text in results if text), None)
        if first_text is not None:
            first_texts.append(first_text - ends[0])
    report["streams"] = {
        "count": len(stream_finals),
        "audio_seconds": round(seconds, 1),
        "words": len(latencies) + misses,
        "misses": misses,
        "without_word_ends": unmeasured,
    }
    report["first_partial_latency"] = summary(first_words)
    report["word_latency"] = summary(latencies)
    report["first_text_latency"] = summary(first_texts)
    report["rtf"], report["cpu_rtf"] = round(compute / seconds, 4), round(cpu / seconds, 4)
    report["stream_wer_greedy"] = round(100 * error_counts(stream_references, stream_finals).wer, 2)
    print(
        f"streams: {len(stream_finals)}, {seconds:.0f} s of audio; latency over {len(latencies) + misses} words "
        f"({misses} never correct) of the {len(stream_finals) - unmeasured} streams with word ends"
    )
    for key in ("first_partial_latency", "word_latency", "first_text_latency"):
        print(f"{key}: {report[key]}")
    print(f"RTF {report['rtf']} ({compute:.2f} s compute), CPU RTF {report['cpu_rtf']}")
    print(f"streams' WER (greedy final): {report['stream_wer_greedy']} %")

    references = [normalize_text(utt.text) for utt in utterances]
    other = load_model(args.bidirectional) if args.bidirectional else None
    other_maps = feature_maps(other, utterances) if other else {}
    report["wer"] = {}
    for condition, normalization in maps.items():
        found = {
            "streaming": streaming_texts(model, utterances, audio, normalization, chunk),
            "streaming model offline": offline_texts(model, utterances, audio, normalization),
        }
        if other is not None:
            found["bidirectional offline"] = offline_texts(other, utterances, audio, other_maps.get(condition))
        for way, texts in found.items():
            for decoder, hypotheses in texts.items():
                wer = error_counts(references, hypotheses).wer
                report["wer"][f"{condition} / {way} / {decoder}"] = round(100 * wer, 2)
                print(f"WER {condition:10s} {way:24s} {decoder:6s} {100 * wer:6.2f} %")
    if args.out:
        args.out.write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
