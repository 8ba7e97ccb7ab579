"""Command-line interface: argument parsing only; the work happens in the library modules."""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import sys
from pathlib import Path

from asr import __version__
from asr.utils.errors import AsrError

log = logging.getLogger("asr")


def _cmd_prepare(args) -> int:
    from asr.data.corpora import prepare_corpus

    options = {}
    if args.holdout_speaker:
        if args.corpus != "fsdd":
            raise AsrError("--holdout-speaker applies to the fsdd corpus only")
        options["holdout_speaker"] = args.holdout_speaker
    counts = prepare_corpus(args.corpus, args.src, args.out, **options)
    for split, count in counts.items():
        print(f"{Path(args.out) / (split + '.jsonl')}: {count} utterances")
    return 0


def _cmd_synth(args) -> int:
    from asr.utils.progress import progress as progress_bar
    from asr.data.synth import assign_speakers, assign_voices, synthesize

    texts = []
    for path in args.text:
        try:
            texts += [line.strip() for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]
        except (OSError, UnicodeDecodeError) as err:
            raise AsrError(f"{path}: cannot read the text file ({err})") from err
    if args.max_texts is not None and len(texts) > args.max_texts:
        texts = random.Random(args.seed).sample(texts, args.max_texts)
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    if args.speakers is not None:
        pairs = assign_speakers(texts, engines, args.speakers, args.seed)
    else:
        pairs = assign_voices(texts, engines, args.per_text, args.seed)
    progress = lambda it: progress_bar(it, total=len(pairs), desc="synthesizing", unit="clip")  # noqa: E731
    utterances, failures = synthesize(pairs, Path(args.out), args.jobs, progress)
    _write_made_speech(Path(args.manifest or Path(args.out) / "manifest.jsonl"), utterances, failures)
    return 1 if failures and not utterances else 0


def _write_made_speech(manifest: Path, utterances, failures: list[str]) -> None:
    """Report each failed clip on stderr, write the manifest of the clips made, and print its size."""
    from asr.data.dataset import write_manifest

    for message in failures:
        print(f"error: {message}", file=sys.stderr)
    write_manifest(manifest, utterances)
    hours = sum(u.duration for u in utterances) / 3600
    print(f"{manifest}: {len(utterances)} utterances, {hours:.2f} h, {len({u.speaker for u in utterances})} voices")


def _cmd_export(args) -> int:
    from asr.inference.export import export_model

    target = export_model(args.model, args.out, half=args.half)
    sizes = ", ".join(f"{p.name} {p.stat().st_size / 1e6:.1f} MB" for p in sorted(target.parent.iterdir()) if p.is_file())
    print(f"{target.parent}: {sizes}")
    return 0


def _cmd_download(args) -> int:
    from asr.data.corpora import download_corpus

    print(download_corpus(args.corpus, args.out, url=args.url, subsets=args.subset, mirror=args.mirror))
    return 0


def _cmd_import_kaldi(args) -> int:
    from asr.data.corpora.kaldi import import_kaldi

    count = import_kaldi(args.data_dir, args.out)
    print(f"{args.out}: {count} utterances")
    return 0


def _cmd_train(args) -> int:
    from dataclasses import replace

    from asr.train.config import load_config
    from asr.utils.threads import configure_threads
    from asr.train.loop import train

    config = load_config(args.config)
    configure_threads(args.threads, reserve=config.train.num_workers)
    if args.seed is not None:
        config = replace(config, train=replace(config.train, seed=args.seed))
    if args.epochs is not None:
        config = replace(config, train=replace(config.train, epochs=args.epochs))
    if args.init is not None:
        config = replace(config, train=replace(config.train, init_from=args.init))
    result = train(config, args.train, args.dev, args.exp, resume=args.resume)
    if result.rank == 0:
        skipped = f", {result.skipped_batches} batch(es) skipped (non-finite)" if result.skipped_batches else ""
        print(
            f"{Path(args.exp) / 'model.pt'}: best epoch {result.best_epoch}, "
            f"dev WER {100 * result.best_dev_wer:.2f}%, {result.seconds:.0f}s{skipped}"
        )
    return 0


def _cmd_shard(args) -> int:
    from asr.data.dataset import read_manifest
    from asr.data.shards import write_shards

    utterances = read_manifest(args.manifest, skip_missing=True)
    index = write_shards(utterances, args.out, args.shard_size, None if args.no_shuffle else args.seed)
    skipped = f", {len(index['skipped'])} unreadable file(s) left out" if index["skipped"] else ""
    print(
        f"{args.out}: {len(index['shards'])} shard(s), {index['utterances']} utterances, "
        f"{index['seconds'] / 3600:.2f} h{skipped}"
    )
    return 0


def _decoder_overrides(args) -> dict:
    """The decoder options given on the command line (None where not given)."""
    return {
        "kind": args.decoder,
        "lm": args.lm,
        "lexicon": args.lexicon,
        "beam_size": args.beam_size,
        "beam_threshold": args.beam_threshold,
        "lm_weight": args.lm_weight,
        "word_score": args.word_score,
        "unk_score": args.unk_score,
        "nbest": getattr(args, "nbest", None),
    }


def _cmd_average(args) -> int:
    from asr.train.averaging import average_models, select_snapshots
    from asr.model.checkpoint import atomic_save

    if len(args.models) == 1 and Path(args.models[0]).is_dir():
        paths = select_snapshots(args.models[0], last=args.last, best=args.best)
    elif args.last is not None or args.best is not None:
        raise AsrError("--last/--best choose snapshots of one experiment folder; give that folder alone")
    else:
        paths = [Path(p) for p in args.models]
    atomic_save(average_models(paths), args.out)
    print(f"{args.out}: average of {len(paths)} model(s): {', '.join(p.name for p in paths)}")
    return 0


def _cmd_evaluate(args) -> int:
    from asr.model.checkpoint import load_model
    from asr.evaluation.evaluate import evaluate
    from asr.utils.threads import configure_threads

    configure_threads(args.threads)
    model = load_model(args.model)
    decoder = model.decoder_config(**_decoder_overrides(args))
    summary = evaluate(model, args.manifest, args.out, model_path=str(model.path), progress=True,
                       decoder_config=decoder, adapt=_adapt_config(args))
    print(
        f"WER {100 * summary['wer']:.2f}% (S {summary['substitutions']}, D {summary['deletions']}, "
        f"I {summary['insertions']}; {summary['num_words']} words, {summary['num_utterances']} utterances)"
        f"  CER {100 * summary['cer']:.2f}%  [{decoder.kind}]  -> {Path(args.out) / 'summary.json'}"
    )
    if summary["num_failed"]:
        print(f"warning: {summary['num_failed']} utterance(s) could not be decoded; see report.md", file=sys.stderr)
    return 0


def _cmd_probe_speakers(args) -> int:
    from asr.model.checkpoint import load_model
    from asr.data.dataset import read_manifest
    from asr.speakers.probe import ProbeConfig, probe_speakers, untrained_copy

    model = load_model(args.model)
    network = untrained_copy(model.network, args.seed) if args.untrained else None
    config = ProbeConfig(max_utterances=args.max_utterances, steps=args.steps, seed=args.seed)
    result = probe_speakers(model, read_manifest(args.manifest), config, network)
    what = "an untrained copy of " if args.untrained else ""
    print(f"speaker probe on {what}{model.path}: {result.speakers} speakers, {result.train_utterances} utterances "
          f"trained it, {result.test_utterances} scored it: frame accuracy {100 * result.frame_accuracy:.1f}% "
          f"(always naming the commonest speaker: {100 * result.majority_accuracy:.1f}%), "
          f"utterance accuracy {100 * result.utterance_accuracy:.1f}%")
    return 0


def _cmd_compare(args) -> int:
    from asr.evaluation.compare import compare, comparison_text, write_comparison

    comparison = compare(args.dir_a, args.dir_b, samples=args.samples, seed=args.seed)
    print(comparison_text(comparison, limit=args.show))
    if args.out:
        print(f"-> {write_comparison(comparison, args.out)}")
    return 0


def _cmd_transcribe(args) -> int:
    from asr.model.checkpoint import load_model
    from asr.decode.ctc import build_decoder
    from asr.speakers.normalization import for_one_speaker, one_speaker_normalization
    from asr.inference.subtitles import group_words, to_srt, to_vtt
    from asr.utils.threads import configure_threads
    from asr.inference.transcribe import transcribe_file

    if args.format in ("srt", "vtt") and len(args.files) > 1 and not args.output_dir:
        raise AsrError(f"--format {args.format} with several files needs --output-dir (one file per input)")
    configure_threads(args.threads, level=logging.DEBUG)  # stderr stays for errors (and progress); -v shows it
    model = load_model(args.model)
    decoder = build_decoder(model.decoder_config(**_decoder_overrides(args)), model.tokenizer)
    timestamps = args.format != "txt"
    speaker = None
    if args.same_speaker:
        speaker = one_speaker_normalization(args.files, model.network, model.log_mel)
    if args.adapt:
        from asr.speakers.adaptation import adapt_to_files

        speaker = adapt_to_files(model, args.files, decoder, _adapt_config(args), base=speaker,
                                 progress=True)
    failures, rows = 0, []
    for path in args.files:
        try:
            transcript = transcribe_file(model, path, decoder, timestamps=timestamps, progress=True,
                                         feature_map=for_one_speaker(speaker))
        except AsrError as err:
            failures += 1
            print(f"error: {err}", file=sys.stderr)
            continue
        if args.format == "txt":
            output = f"{path}\t{transcript.text}" if len(args.files) > 1 else transcript.text
        elif args.format == "json":
            rows.append(transcript.to_json())
            output = json.dumps(transcript.to_json(), ensure_ascii=False)
        else:
            cues = group_words(transcript.words)
            output = (to_srt if args.format == "srt" else to_vtt)(cues).rstrip("\n")
        if args.output_dir:
            target = Path(args.output_dir) / f"{Path(path).stem}.{args.format}"
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(output + "\n", encoding="utf-8")
            print(target, file=sys.stderr)
        elif args.format != "json" or len(args.files) == 1:
            print(output)
            sys.stdout.flush()
    if args.format == "json" and len(args.files) > 1 and not args.output_dir:
        print(json.dumps(rows, ensure_ascii=False, indent=1))
    return 1 if failures else 0


def _cmd_lm_build(args) -> int:
    from asr.model.checkpoint import load_model
    from asr.decode.lm import build_lm

    tokenizer = load_model(args.model).tokenizer if args.model else None
    lexicon = args.lexicon
    if args.vocab_from and not lexicon:
        lexicon = str(Path(args.out).with_suffix(".lexicon.txt"))
    built = build_lm(args.text, args.order, args.out, units=args.units, tokenizer=tokenizer,
                     lexicon=lexicon, vocabulary_manifests=args.vocab_from or [])
    print(f"{built.arpa}: order {args.order}, {built.sentences} sentences, {built.vocabulary} words, "
          f"n-grams {built.ngrams}")
    if built.lexicon:
        print(f"{built.lexicon}: lexicon")
    return 0


def _read_arpa(path: str):
    """An ARPA file as :class:`asr.decode.arpa.BackoffLM`, or an AsrError naming the file."""
    from asr.decode.arpa import read_arpa

    _read_arpa_check(path)
    return read_arpa(path)


def _ngram_counts(model) -> list[int]:
    return [len(table) for table in model.probs]


def _file_size(path: str | Path) -> str:
    size = Path(path).stat().st_size
    return f"{size / 1e6:.2f} MB" if size >= 1e6 else f"{size / 1e3:.1f} kB"


def _words(model) -> set[str]:
    """The words of a :class:`asr.decode.arpa.BackoffLM`, without ``<s>``, ``</s>`` and ``<unk>``."""
    from asr.decode.arpa import SENTENCE_END, SENTENCE_START, UNK

    return model.vocabulary - {SENTENCE_START, SENTENCE_END, UNK}


def _lm_tokenizer(model_path: str | None):
    from asr.model.checkpoint import load_model
    from asr.data.text import CharTokenizer

    return load_model(model_path).tokenizer if model_path else CharTokenizer()


def _cmd_lm_mix(args) -> int:
    from asr.decode.arpa import interpolate, perplexity, write_arpa
    from asr.decode.lm import read_sentences
    from asr.data.text import normalize_text

    a, b = _read_arpa(args.lm_a), _read_arpa(args.lm_b)
    if args.weights is not None and not args.tune_on:
        raise AsrError("--weights is the grid of --tune-on; with one weight give --weight")
    tuned = ""
    if args.tune_on:
        sentences = [normalize_text(line) for path in args.tune_on for line in read_sentences(path)]
        sentences = [s.split() for s in sentences if s]
        if not sentences:
            raise AsrError(f"{', '.join(args.tune_on)}: no usable sentences to tune the weight on")
        words = sum(len(s) for s in sentences)
        known = a.vocabulary | b.vocabulary
        oov = sum(w not in known for s in sentences for w in s)
        grid = args.weights or [round(0.1 * i, 1) for i in range(1, 10)]
        print(f"perplexity on {', '.join(args.tune_on)} ({len(sentences)} sentences, {words} words, "
              f"{oov} outside both vocabularies, scored as <unk>):")
        print(f"| weight of {Path(args.lm_a).name} | perplexity |\n|---:|---:|")
        best = None
        for weight in grid:
            mixed = interpolate(a, b, weight)
            ppl = perplexity(mixed, sentences)
            print(f"| {weight:g} | {ppl:.2f} |")
            if best is None or ppl < best[1]:
                best = (weight, ppl, mixed)
        weight, ppl, mixed = best
        tuned = f"; best of {len(grid)} weights by perplexity {ppl:.2f} on the tuning text"
    else:
        weight = args.weight
        mixed = interpolate(a, b, weight)
    write_arpa(mixed, args.out)
    print(f"{args.out}: {weight:g} x {args.lm_a} + {1 - weight:g} x {args.lm_b}, order {mixed.order}, "
          f"{len(_words(mixed))} words, n-grams {_ngram_counts(mixed)}, {_file_size(args.out)}{tuned}")
    return 0


def _cmd_lm_prune(args) -> int:
    from asr.decode.arpa import prune, write_arpa

    if args.threshold < 0:
        raise AsrError(f"--threshold must be >= 0, not {args.threshold}")
    model = _read_arpa(args.lm)
    pruned = prune(model, args.threshold)
    write_arpa(pruned, args.out)
    print(f"{args.out}: pruned {args.lm} at threshold {args.threshold:g}: n-grams {_ngram_counts(model)} -> "
          f"{_ngram_counts(pruned)}, {_file_size(args.lm)} -> {_file_size(args.out)}")
    return 0


def _cmd_lm_lexicon(args) -> int:
    from asr.utils.atomic import write_text_atomic
    from asr.decode.lm import arpa_vocabulary, lexicon_lines

    _read_arpa_check(args.lm)
    tokenizer = _lm_tokenizer(args.model)
    lines, unspellable = lexicon_lines(arpa_vocabulary(args.lm), tokenizer)
    if not lines:
        raise AsrError(f"{args.lm}: none of its words can be spelled in the model's tokens; no lexicon written")
    write_text_atomic(args.out, "".join(lines))
    skipped = (f"; {len(unspellable)} word(s) the tokens cannot spell left out (first: {unspellable[0]!r})"
               if unspellable else "")
    print(f"{args.out}: lexicon of {len(lines)} words of {args.lm} spelled in the model's tokens{skipped}")
    return 0


def _read_arpa_check(path: str) -> None:
    """An AsrError naming ``path`` unless it is an ARPA text file (checked without reading it all)."""
    from asr.decode.ctc import is_arpa_text

    if not Path(path).is_file():
        raise AsrError(f"{path}: no such file")
    if not is_arpa_text(path):
        raise AsrError(f"{path}: not an ARPA language model (no \\data\\ header; a KenLM binary or compressed "
                       "file must be turned back into ARPA text)")


def _cmd_lm_restrict(args) -> int:
    from asr.decode.arpa import restrict_vocabulary, write_arpa
    from asr.decode.lm import spell

    model = _read_arpa(args.lm)
    tokenizer = _lm_tokenizer(args.model)
    restricted = restrict_vocabulary(model, lambda word: spell(word, tokenizer) is not None)
    write_arpa(restricted, args.out)
    removed = sorted(_words(model) - _words(restricted))
    first = f" (first: {removed[0]!r})" if removed else ""
    print(f"{args.out}: {len(_words(restricted))} of {len(_words(model))} words of {args.lm} kept, "
          f"{len(removed)} the model's tokens cannot spell removed{first} (their unigram mass goes to <unk>), "
          f"n-grams {_ngram_counts(model)} -> {_ngram_counts(restricted)}")
    return 0


def _cmd_tune_lm(args) -> int:
    from asr.model.checkpoint import load_model, store_decoder_settings
    from asr.decode.ctc import DecoderConfig
    from asr.evaluation.tune import tune_lm, tuning_table

    model = load_model(args.model)
    overrides = _decoder_overrides(args) | {"kind": "beam"}
    base = model.decoder_config(**overrides)
    result = tune_lm(model, args.manifest, base, args.lm_weights, args.word_scores, progress=True)
    print(tuning_table(result))
    print(f"\ngreedy WER {100 * result.greedy_wer:.2f}%; best beam WER "
          f"{100 * min(p.wer for p in result.points):.2f}% at LM weight {result.best.lm_weight:g}, "
          f"word score {result.best.word_score:g} ({result.num_utterances} utterances)")
    if args.out:
        rows = [p.__dict__ for p in result.points]
        Path(args.out).write_text(json.dumps({"points": rows, "best": result.best.describe(),
                                              "greedy_wer": result.greedy_wer}, indent=1) + "\n")
    if not args.no_save:
        settings = {k: v for k, v in result.best.describe().items() if v != getattr(DecoderConfig(), k)}
        print(f"saved as the default decoder of {store_decoder_settings(args.model, settings)}")
    return 0


def _cmd_summarize(args) -> int:
    from asr.evaluation.report.markdown import results_table

    summaries = {}
    for folder in args.dirs:
        path = Path(folder) / "summary.json"
        try:
            summaries[str(folder)] = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as err:
            raise AsrError(f"{path}: cannot read evaluation summary ({err})") from None
    print(results_table(summaries, pooled=not args.no_pool))
    return 0


def _floats(text: str) -> list[float]:
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def _add_decoder_options(p: argparse.ArgumentParser, tuning: bool = False) -> None:
    """Decoder options; unset ones fall back to the model's stored defaults (asr tune-lm), then greedy."""
    g = p.add_argument_group("decoding (default: the model's stored settings, else greedy)")
    if not tuning:
        g.add_argument("--decoder", choices=["greedy", "beam"], help="greedy, or beam search (implied by --lm/--lexicon)")
    else:
        p.set_defaults(decoder="beam")
    g.add_argument("--lm", metavar="LM.arpa",
                   help="n-gram LM (asr lm build): over words (with --lexicon; without one, its vocabulary is spelled "
                        "in the model's tokens into LM.arpa.<hash>.lexicon.txt), or over tokens (lexicon-free)")
    g.add_argument("--lexicon", metavar="FILE", help="lexicon: restricts hypotheses to its words")
    g.add_argument("--beam-size", type=int, help="hypotheses kept per frame (default 50)")
    g.add_argument("--beam-threshold", type=float, help="prune hypotheses this far below the best (default 10)")
    if not tuning:
        g.add_argument("--lm-weight", type=float, help="LM weight (default 1)")
        g.add_argument("--word-score", type=float, help="score added per word (default 0)")
    else:
        p.set_defaults(lm_weight=None, word_score=None)
    g.add_argument("--unk-score", type=float, help="score per out-of-lexicon word (default -inf: none allowed)")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return value


def _add_threads_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--threads", type=_positive_int, metavar="N",
                   help="torch compute threads (default: OMP_NUM_THREADS when set, else the cores free to this "
                        "process: its CPU affinity less the other processes running now)")


def _add_adapt_options(p: argparse.ArgumentParser, what: str) -> None:
    """Two-pass speaker adaptation (asr/adapt.py)."""
    g = p.add_argument_group("speaker adaptation (two passes; no reference transcript is read)")
    g.add_argument("--adapt", action="store_true",
                   help=f"{what}: decode, fit a feature transform to each voice through the frozen network with "
                        "the first pass's transcripts, decode again. Costs about a minute per speaker on one "
                        "core for 500 short clips. On FSDD's unseen speakers, 13.72 %% -> 11.96 %% WER "
                        "(recipes/fsdd/README.md)")
    g.add_argument("--adapt-transform", choices=["diagonal", "full"], default="diagonal",
                   help="diagonal: a scale and a bias per mel bin (default); full: a matrix over the bins and a "
                        "bias (more to fit, and on FSDD less stable from one seed to the next)")
    g.add_argument("--adapt-epochs", type=int, default=20, metavar="N",
                   help="passes over the first pass's transcripts (default 20)")
    g.add_argument("--adapt-seed", type=int, default=0, metavar="N",
                   help="seeds the order and augmentation of the fitting (default 0)")


def _adapt_config(args):
    from asr.speakers.adaptation import AdaptConfig

    if not args.adapt:
        return None
    return AdaptConfig(transform=args.adapt_transform, epochs=args.adapt_epochs, seed=args.adapt_seed)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="asr",
        description="Train, evaluate and run CTC speech recognisers (log-mel -> BiLSTM -> CTC).",
    )
    parser.add_argument("--version", action="version", version=f"asr {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("prepare", help="write JSON-lines manifests for a corpus",
                       description="Read a corpus in its own layout and write train/dev/test manifests.")
    p.add_argument("corpus", choices=["yesno", "fsdd", "an4", "ljspeech", "librispeech", "vctk", "english"],
                   help="which corpus layout to read (english: SRC holds ljspeech/, an4/ and fsdd/ together, "
                        "and synth_*.txt files with text to synthesize are written too)")
    p.add_argument("--src", required=True, help="folder holding the corpus as downloaded")
    p.add_argument("--out", required=True, help="folder for <split>.jsonl")
    p.add_argument("--holdout-speaker", metavar="NAME",
                   help="fsdd only: test on every clip of this speaker, train on the others")
    p.set_defaults(func=_cmd_prepare)

    p = sub.add_parser("synth", help="synthesize training speech with espeak-ng, mbrola, flite and festival",
                       description="Read sentences aloud with many synthetic voices (voice, speaking rate and "
                                   "pitch drawn per sentence, or per speaker with --speakers) and write a manifest "
                                   "of the clips. Clips are cached under OUT by a hash of text and voice: a second "
                                   "run only makes what is missing. Needs the Debian packages espeak-ng, flite, "
                                   "festival, festvox-kallpc16k, festvox-kdlpc16k, festvox-us-slt-hts for the "
                                   "engines asked for; mbrola needs mbrola and its mbrola-* voices (components "
                                   "contrib and non-free; the voices' licence forbids commercial use).")
    p.add_argument("--text", required=True, nargs="+", metavar="FILE", help="text files, one sentence per line")
    p.add_argument("--out", required=True, metavar="DIR", help="folder for the WAV files")
    p.add_argument("--manifest", metavar="FILE", help="manifest to write (default OUT/manifest.jsonl)")
    p.add_argument("--engines", default="espeak-ng,flite,festival",
                   help="comma-separated engines (espeak-ng, mbrola, flite, festival, piper), taking turns sentence by "
                        "sentence, or speaker by speaker (default: espeak-ng,flite,festival)")
    voices = p.add_mutually_exclusive_group()
    voices.add_argument("--per-text", type=int, default=1, metavar="N",
                        help="voices reading each sentence, drawn anew for every sentence (default 1)")
    voices.add_argument("--speakers", type=int, metavar="N",
                        help="N voices that each read every sentence, so that each synthetic speaker has as "
                             "much audio as a real one (for normalization = \"speaker\")")
    p.add_argument("--max-texts", type=int, metavar="N", help="synthesize a seeded random sample of N sentences")
    p.add_argument("--seed", type=int, default=0, help="seed for the sample and the voices (default 0)")
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                   help="synthesizer processes at once (default: the number of CPUs)")
    p.set_defaults(func=_cmd_synth)

    p = sub.add_parser("download", help="download and unpack a corpus",
                       description="Fetch a corpus archive from its public address (or --url) and unpack it.")
    p.add_argument("corpus", choices=["yesno", "fsdd", "an4", "ljspeech", "librispeech"])
    p.add_argument("--out", required=True, help="folder to unpack into; prints the corpus root")
    p.add_argument("--url", help="archive address to use instead of the corpus' public one")
    p.add_argument("--subset", action="append", metavar="NAME",
                   help="librispeech: a subset to fetch, e.g. dev-clean (repeatable; default: dev-clean, "
                        "test-clean, train-clean-100)")
    p.add_argument("--mirror", metavar="URL",
                   help="librispeech: address holding <subset>.tar.gz (default https://www.openslr.org/resources/12)")
    p.set_defaults(func=_cmd_download)

    p = sub.add_parser("import-kaldi", help="turn a Kaldi data directory into a manifest",
                       description="Read wav.scp (paths, or sph2pipe/sox decoding pipes: parsed, never run), "
                                   "text, utt2spk and segments of a Kaldi "
                                   "data directory and write a JSON-lines manifest (segments become offset/duration).")
    p.add_argument("data_dir", metavar="DIR", help="Kaldi data directory")
    p.add_argument("--out", required=True, help="manifest to write (JSON lines)")
    p.set_defaults(func=_cmd_import_kaldi)

    p = sub.add_parser("train", help="train an acoustic model",
                       description="Train a CTC model; the best epoch by dev WER is packaged as EXP/model.pt.")
    p.add_argument("--config", required=True, help="TOML file with [features] [augment] [model] [train]")
    p.add_argument("--train", required=True,
                   help="training manifest (JSON lines), or shards: a folder, DIR/shard-{000000..000009}.tar, or URLs")
    p.add_argument("--dev", required=True, help="validation manifest, for dev loss/WER and model selection")
    p.add_argument("--exp", required=True, help="experiment folder for model.pt, logs and checkpoints")
    p.add_argument("--resume", action="store_true",
                   help="continue from EXP/last.pt (mid-epoch when it was written mid-epoch)")
    p.add_argument("--seed", type=int, help="override [train] seed")
    p.add_argument("--epochs", type=int, help="override [train] epochs")
    _add_threads_option(p)
    p.add_argument("--init", metavar="MODEL",
                   help="start from this packaged model's weights (fine-tuning; override [train] init_from)")
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("shard", help="write a manifest as WebDataset tar shards",
                       description="Write a manifest's audio and transcripts as WebDataset-format tar shards "
                                   "(KEY.flac/.wav + KEY.json) and DIR/index.json, for streamed training.")
    p.add_argument("manifest", help="manifest to shard (JSON lines)")
    p.add_argument("--out", required=True, help="folder for shard-NNNNNN.tar and index.json")
    p.add_argument("--shard-size", type=int, default=1000, help="utterances per shard (default 1000)")
    p.add_argument("--seed", type=int, default=0, help="seed of the shuffle before sharding (default 0)")
    p.add_argument("--no-shuffle", action="store_true", help="keep the manifest's order")
    p.set_defaults(func=_cmd_shard)

    p = sub.add_parser("average", help="average the weights of several models",
                       description="Average packaged models: an experiment folder with --last N or --best N "
                                   "(its checkpoints/ snapshots), or model files.")
    p.add_argument("models", nargs="+", metavar="MODEL", help="an experiment folder, or model .pt files")
    p.add_argument("--out", required=True, help="packaged model to write")
    choice = p.add_mutually_exclusive_group()
    choice.add_argument("--last", type=int, metavar="N", help="the N latest epoch snapshots")
    choice.add_argument("--best", type=int, metavar="N", help="the N best epoch snapshots by dev WER")
    p.set_defaults(func=_cmd_average)

    p = sub.add_parser("evaluate", help="decode a manifest and score it",
                       description="Decode a manifest; write summary.json, report.md, report.html (self-contained, "
                                   "with plots), alignments.txt (sclite-style) and hyp.jsonl to --out.")
    p.add_argument("--model", help="model.pt or an experiment folder (default: the English model that ships with asr)")
    p.add_argument("--manifest", required=True, help="manifest to decode (JSON lines)")
    p.add_argument("--out", required=True, help="folder for the report")
    _add_decoder_options(p)
    _add_adapt_options(p, "adapt the model to each speaker label of the manifest")
    _add_threads_option(p)
    p.set_defaults(func=_cmd_evaluate)

    p = sub.add_parser("probe-speakers", help="measure how well a model's recurrent outputs tell speakers apart",
                       description="Train a small classifier to name the speaker of each recurrent output frame of "
                                   "some of each speaker's utterances (the model frozen), and print its accuracy on "
                                   "their other utterances beside the majority level: a check of speaker-adversarial "
                                   "training ([train] speaker_adversary_weight).")
    p.add_argument("--model", required=True, help="model.pt or an experiment folder")
    p.add_argument("--manifest", required=True, help="manifest with a \"speaker\" field (JSON lines)")
    p.add_argument("--untrained", action="store_true",
                   help="probe a freshly initialised copy of the network instead: what the features alone tell")
    p.add_argument("--max-utterances", type=int, default=600, help="utterances sampled and encoded (default 600)")
    p.add_argument("--steps", type=int, default=1500, help="training steps of the probe (default 1500)")
    p.add_argument("--seed", type=int, default=0, help="seed of the sample, the split and the probe (default 0)")
    p.set_defaults(func=_cmd_probe_speakers)

    p = sub.add_parser("export", help="copy a model and its LM/lexicon into one folder that can ship",
                       description="Write OUT/model.pt with copies of the LM and lexicon its stored decoder settings "
                                   "name (asr tune-lm), referred to by relative paths, so OUT can move anywhere "
                                   "(e.g. asr/pretrained/english, the default model).")
    p.add_argument("--model", required=True, help="model.pt or an experiment folder")
    p.add_argument("--out", required=True, metavar="DIR", help="folder to write")
    p.add_argument("--half", action="store_true", help="store the weights in float16 (half the size)")
    p.set_defaults(func=_cmd_export)

    p = sub.add_parser("compare", help="compare two evaluations of the same manifest",
                       description="Compare two folders written by `asr evaluate --out` on the same manifest: "
                                   "WER of each, the difference B - A with a paired-bootstrap confidence interval "
                                   "and p-value, and the utterances that got better or worse. Prints a summary; "
                                   "with --out, also writes OUT/compare.html (self-contained) and OUT/compare.json.")
    p.add_argument("dir_a", metavar="DIR_A", help="evaluation folder of system A (the baseline)")
    p.add_argument("dir_b", metavar="DIR_B", help="evaluation folder of system B")
    p.add_argument("--out", metavar="DIR", help="folder for compare.html and compare.json")
    p.add_argument("--samples", type=int, default=1000, help="bootstrap samples (default 1000)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    p.add_argument("--show", type=int, default=10, metavar="N",
                   help="utterances listed per direction (worse, better) in the terminal (default 10)")
    p.set_defaults(func=_cmd_compare)

    p = sub.add_parser("transcribe", help="print the transcript of audio files",
                       description="Transcribe audio files (any format soundfile reads, any rate and channel count, any "
                                   "length: long files are cut at pauses and decoded in batches).")
    p.add_argument("files", nargs="+", metavar="FILE", help="audio files")
    p.add_argument("--model", help="model.pt or an experiment folder (default: the English model that ships with asr, "
                                   "decoded with its tuned beam search and word LM)")
    p.add_argument("--format", choices=["txt", "json", "srt", "vtt"], default="txt",
                   help="txt: the text (FILE<TAB>TEXT when several files); json: text and word timings "
                        "({file, text, words: [{word, start, end}]}, a list for several files); "
                        "srt/vtt: subtitles, words grouped into lines of at most 42 characters")
    p.add_argument("--output-dir", metavar="DIR", help="write DIR/<file stem>.<format> per input instead of stdout")
    p.add_argument("--same-speaker", action="store_true",
                   help='the files are all one speaker: normalise their features by that voice\'s own statistics, '
                        'pooled over all of them (models trained with [features] normalization = "speaker"; '
                        "without this flag such a model uses its training set's global statistics). Give it "
                        "several seconds of the voice: on FSDD's unseen speakers, ten clips (5 s) gave 15.6 %% WER, "
                        "one clip alone 44 %%, no statistics 26 %% (recipes/fsdd/README.md)")
    _add_decoder_options(p)
    _add_adapt_options(p, "the files are all one speaker: adapt the model to that voice")
    p.add_argument("--nbest", type=int, help="hypotheses per file (json lists them as alternatives)")
    _add_threads_option(p)
    p.set_defaults(func=_cmd_transcribe)

    p = sub.add_parser("lm", help="language models for beam search",
                       description="Build n-gram language models (ARPA, modified Kneser-Ney) and lexicons; mix, prune "
                                   "and restrict ARPA models, wherever they were built.")
    lm_sub = p.add_subparsers(dest="lm_command", required=True, metavar="ACTION")
    b = lm_sub.add_parser("build", help="estimate an n-gram LM from text and write it as ARPA",
                          description="Estimate an interpolated modified Kneser-Ney n-gram LM from text "
                                      "(one sentence per line, or a JSON-lines manifest's text fields), "
                                      "normalised like every transcript, and write it as ARPA.")
    b.add_argument("--text", required=True, nargs="+", metavar="FILE", help="text files or manifests")
    b.add_argument("--order", type=int, default=3, help="n-gram order (default 3)")
    b.add_argument("--out", required=True, metavar="LM.arpa", help="the ARPA file to write")
    b.add_argument("--units", choices=["words", "tokens"], default="words",
                   help="words: a word LM for lexicon decoding (default); tokens: an LM over the model's "
                        "tokens with | between words, for lexicon-free decoding")
    b.add_argument("--lexicon", metavar="FILE", help="also write the LM's words spelled in the model's tokens")
    b.add_argument("--vocab-from", nargs="+", metavar="MANIFEST",
                   help="add these manifests' words to the vocabulary and write a lexicon "
                        "(to --lexicon, default LM.lexicon.txt)")
    b.add_argument("--model", help="spell the lexicon with this model's tokenizer (default: characters)")
    b.set_defaults(func=_cmd_lm_build)

    m = lm_sub.add_parser("mix", help="linearly interpolate two ARPA LMs",
                          description="Mix two ARPA LMs: W p_A + (1 - W) p_B for every n-gram of either, with "
                                      "backoff weights recomputed so that every context sums to one over both "
                                      "vocabularies (as SRILM's ngram -mix-lm). With --tune-on, W is chosen from "
                                      "a grid by perplexity on that text.")
    m.add_argument("lm_a", metavar="A.arpa", help="the first LM (weighted by W)")
    m.add_argument("lm_b", metavar="B.arpa", help="the second LM (weighted by 1 - W)")
    weight = m.add_mutually_exclusive_group(required=True)
    weight.add_argument("--weight", type=float, metavar="W", help="weight of A, in [0, 1]")
    weight.add_argument("--tune-on", nargs="+", metavar="FILE",
                        help="text files or manifests (never the test set): print the perplexity at each weight "
                             "of --weights and write the mixture with the lowest")
    m.add_argument("--weights", type=_floats, metavar="LIST",
                   help="comma-separated weights of A tried with --tune-on (default 0.1,0.2,...,0.9)")
    m.add_argument("--out", required=True, metavar="M.arpa", help="the ARPA file to write")
    m.set_defaults(func=_cmd_lm_mix)

    r = lm_sub.add_parser("prune", help="drop n-grams that barely change the LM",
                          description="Remove n-grams above the unigrams whose weighted difference from their "
                                      "backoff estimate is below a threshold (Seymore and Rosenfeld), highest "
                                      "order first, and recompute the backoff weights. Prints the n-gram counts "
                                      "and file sizes before and after.")
    r.add_argument("lm", metavar="IN.arpa", help="the LM to prune")
    r.add_argument("--threshold", type=float, required=True, metavar="T",
                   help="weighted-difference threshold (larger prunes more; try 1e-7 to 1e-5)")
    r.add_argument("--out", required=True, metavar="OUT.arpa", help="the ARPA file to write")
    r.set_defaults(func=_cmd_lm_prune)

    x = lm_sub.add_parser("lexicon", help="spell an LM's vocabulary in a model's tokens",
                          description="Write a lexicon for an ARPA word LM: each of its words spelled in the "
                                      "model's tokens (word<TAB>t o k e n s |). Words the tokens cannot spell are "
                                      "left out and counted.")
    x.add_argument("lm", metavar="LM.arpa", help="the word LM")
    x.add_argument("--out", required=True, metavar="FILE", help="the lexicon to write")
    x.add_argument("--model", help="spell with this model's tokenizer (default: characters)")
    x.set_defaults(func=_cmd_lm_lexicon)

    t = lm_sub.add_parser("restrict", help="keep only the words a model can spell",
                          description="Remove from an ARPA LM every word the model's tokens cannot spell (their "
                                      "unigram mass goes to <unk>, their n-grams are dropped) and recompute the "
                                      "backoff weights.")
    t.add_argument("lm", metavar="IN.arpa", help="the LM to restrict")
    t.add_argument("--out", required=True, metavar="OUT.arpa", help="the ARPA file to write")
    t.add_argument("--model", help="the model whose tokenizer spells the words (default: characters)")
    t.set_defaults(func=_cmd_lm_restrict)

    p = sub.add_parser("tune-lm", help="search LM weight x word score on a dev set",
                       description="Run the acoustic model over a dev manifest once, beam-decode it at every "
                                   "LM weight x word score, print the WER table and store the best settings "
                                   "in the model as its default decoder.")
    p.add_argument("--model", required=True, help="model.pt or an experiment folder")
    p.add_argument("--manifest", required=True, help="dev manifest (never the test set)")
    p.add_argument("--lm-weights", type=_floats, default=[0.0, 0.25, 0.5, 1.0, 1.5, 2.0],
                   help="comma-separated LM weights (default 0,0.25,0.5,1,1.5,2)")
    p.add_argument("--word-scores", type=_floats, default=[-1.0, 0.0, 1.0, 2.0],
                   help="comma-separated word scores (default -1,0,1,2; write --word-scores=-2,0,2 when the list starts with a minus)")
    p.add_argument("--out", metavar="FILE.json", help="also write the table as JSON")
    p.add_argument("--no-save", action="store_true", help="print only; leave the model unchanged")
    _add_decoder_options(p, tuning=True)
    p.set_defaults(func=_cmd_tune_lm)

    p = sub.add_parser("summarize", help="tabulate several evaluations",
                       description="Print a Markdown table of evaluation folders (summary.json), pooled over all.")
    p.add_argument("dirs", nargs="+", metavar="DIR", help="folders written by asr evaluate --out")
    p.add_argument("--no-pool", action="store_true",
                   help="no pooled total row (for several decodings of the same set)")
    p.set_defaults(func=_cmd_summarize)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(format="%(levelname)s: %(message)s", stream=sys.stderr)
    log.setLevel(logging.DEBUG if args.verbose else logging.INFO)
    try:
        return args.func(args)
    except AsrError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except OSError as err:  # e.g. an output folder that cannot be written
        print(f"error: {err}", file=sys.stderr)
        return 2
    except Exception as err:  # a bug, not the user's input: one line here, the traceback with -v
        if args.verbose:
            raise
        print(f"error: unexpected {type(err).__name__}: {err} (a bug in asr: rerun with -v for the traceback "
              "and report it)", file=sys.stderr)
        return 3
