"""Beam search with a word LM: asr's decoder (flashlight, lexicon) against pyctcdecode, same inputs.

Both decode the same log-probabilities (the model run once over real audio), at the same beam
size and pruning threshold, with the same ARPA LM; the script prints utterances per second, the speed ratio and the
WER of each. pyctcdecode is not a dependency of the toolkit; install it for this benchmark with

    pip install --no-deps pyctcdecode && pip install pygtrie kenlm   # kenlm builds from source (~1 min)

Usage:
    python benchmarks/beam_search.py --model exp/ljspeech --manifest data/ljspeech/dev.jsonl \\
        --lm exp/ljspeech/lm/words.arpa --lexicon exp/ljspeech/lm/lexicon.txt [--beam-size 50]

LM weight and word score come from the model's stored decoder settings (asr tune-lm) unless
given; pyctcdecode gets the same numbers as its alpha and beta unless --pyctcdecode-alpha/-beta
are given (its LM scale differs, so give it its own best values for a fair WER).
"""

from __future__ import annotations

import argparse
import time

import torch

from asr.data.dataset import SpeechDataset, read_manifest
from asr.data.text import normalize_text
from asr.decode.ctc import build_decoder
from asr.evaluation.metrics import error_counts
from asr.inference.recognize import batches, emissions
from asr.model.checkpoint import load_model


def model_outputs(model, manifest: str) -> tuple[list[torch.Tensor], list[str]]:
    """Per-utterance log-probabilities ``(T, V)`` and normalised references."""
    utterances = read_manifest(manifest)
    dataset = SpeechDataset(utterances, model.log_mel, model.tokenizer)
    outputs, references = [], []
    with torch.inference_mode():
        for batch in batches(dataset):
            log_probs, lengths = emissions(model.network, batch)
            for row, index in enumerate(batch.indices):
                outputs.append(log_probs[row, : lengths[row]].contiguous())
                references.append(normalize_text(utterances[index].text))
    return outputs, references


def timed(decode, outputs, repeats: int) -> tuple[list[str], float]:
    """Texts and the fastest of ``repeats`` passes (the machine may be shared)."""
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        texts = [decode(x) for x in outputs]
        best = min(best, time.perf_counter() - started)
    return texts, best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True)
    parser.add_argument("--manifest", required=True, help="real audio, e.g. the dev set")
    parser.add_argument("--lm", required=True, help="ARPA word LM")
    parser.add_argument("--lexicon", required=True, help="lexicon (its words are pyctcdecode's unigrams)")
    parser.add_argument("--beam-size", type=int, default=50)
    parser.add_argument("--lm-weight", type=float)
    parser.add_argument("--word-score", type=float)
    parser.add_argument("--pyctcdecode-alpha", type=float, help="its LM weight (default: ours)")
    parser.add_argument("--pyctcdecode-beta", type=float, help="its word score (default: ours)")
    parser.add_argument("--repeats", type=int, default=3, help="passes per decoder; the fastest counts")
    args = parser.parse_args()
    torch.set_num_threads(1)

    model = load_model(args.model)
    config = model.decoder_config(
        kind="beam",
        lm=args.lm,
        lexicon=args.lexicon,
        beam_size=args.beam_size,
        lm_weight=args.lm_weight,
        word_score=args.word_score,
    )
    outputs, references = model_outputs(model, args.manifest)
    frames = sum(len(x) for x in outputs)
    print(
        f"{len(outputs)} utterances, {frames} frames, vocabulary {outputs[0].shape[1]}, beam {config.beam_size}, "
        f"prune {config.beam_threshold:g} below the best, LM weight {config.lm_weight:g}, "
        f"word score {config.word_score:g}"
    )

    ours = build_decoder(config, model.tokenizer)
    ours_texts, ours_seconds = timed(
        lambda x: ours.decode(x[None], torch.tensor([len(x)]))[0][0].text, outputs, args.repeats
    )

    from pyctcdecode import build_ctcdecoder

    labels = ["" if i == model.tokenizer.blank_id else token for i, token in enumerate(model.tokenizer.vocabulary)]
    words = [line.split("\t")[0] for line in open(args.lexicon, encoding="utf-8")]
    alpha = config.lm_weight if args.pyctcdecode_alpha is None else args.pyctcdecode_alpha
    beta = config.word_score if args.pyctcdecode_beta is None else args.pyctcdecode_beta
    theirs = build_ctcdecoder(labels, kenlm_model_path=args.lm, unigrams=words, alpha=alpha, beta=beta)
    their_texts, their_seconds = timed(
        lambda x: " ".join(
            theirs.decode(x.numpy(), beam_width=config.beam_size, beam_prune_logp=-config.beam_threshold).split()
        ),
        outputs,
        args.repeats,
    )

    rows = [
        ("asr (flashlight, lexicon)", ours_texts, ours_seconds),
        (f"pyctcdecode (alpha {alpha:g}, beta {beta:g})", their_texts, their_seconds),
    ]
    print(f"{'decoder':34s} {'utt/s':>8s} {'WER':>8s} {'CER':>8s}")
    for name, texts, seconds in rows:
        counts = error_counts(references, texts)
        print(f"{name:34s} {len(outputs) / seconds:8.2f} {100 * counts.wer:7.2f}% {100 * counts.cer:7.2f}%")
    print(f"speed ratio asr / pyctcdecode: {their_seconds / ours_seconds:.1f}x")


if __name__ == "__main__":
    main()
