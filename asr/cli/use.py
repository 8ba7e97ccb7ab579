"""Commands that use a trained model: transcribe, evaluate, compare, summarize."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

from asr.cli.common import (
    adapt_config,
    add_adapt_options,
    add_command,
    add_decoder_options,
    add_threads_option,
    decoder_overrides,
    examples,
)
from asr.utils.errors import AsrError

TITLE = "use"
DEFAULT_MODEL = "the English model that ships with asr, decoded with its tuned beam search and word LM"


def _cmd_transcribe(args) -> int:
    from asr.inference.files import gather_inputs
    from asr.inference.recognizer import Recognizer
    from asr.utils.threads import configure_threads

    if args.stream:
        return _stream(args)
    if args.raw_rate is not None:
        raise AsrError("--raw-rate describes raw PCM on stdin: it goes with --stream -")
    inputs = gather_inputs(args.inputs, args.files_from, args.manifest)
    if not inputs:
        raise AsrError("nothing to transcribe: give audio files or folders, --files-from or --manifest")
    if all(item.problem for item in inputs):
        raise AsrError("; ".join(item.problem for item in inputs))
    if args.format in ("srt", "vtt") and len(inputs) > 1 and not args.output_dir:
        raise AsrError(f"--format {args.format} with several files needs -o/--output-dir (one file per input)")
    configure_threads(args.threads, level=logging.DEBUG)  # stderr stays for errors (and progress); -v shows it
    recognizer = Recognizer.load(args.model, **decoder_overrides(args))  # what asr.load_model() gives
    paths = [item.path for item in inputs if not item.problem]
    feature_map = _speaker_feature_map(args, recognizer.model, recognizer.decoder, paths)
    return _transcribe_each(args, inputs, recognizer, feature_map)


def _stream(args) -> int:
    """``--stream``: one file or stdin, read block by block; partials and the final text as they come."""
    import torch

    from asr.inference.recognizer import Recognizer
    from asr.inference.streaming import print_stream, transcribe_stream
    from asr.utils.threads import configure_threads

    if len(args.inputs) != 1 or args.files_from or args.manifest:
        raise AsrError("--stream reads one audio file, or - for stdin (a WAV stream, or raw PCM with --raw-rate)")
    if args.format not in ("txt", "json") or args.output_dir or args.same_speaker or args.adapt or args.nbest:
        raise AsrError(
            "--stream prints txt or json lines to stdout: -o, srt/vtt, --same-speaker, --adapt and "
            "--nbest need the whole file (drop --stream)"
        )
    recognizer = Recognizer.load(args.model, **decoder_overrides(args))
    if not isinstance(recognizer.model.network, torch.nn.Module):
        raise AsrError("--stream runs the torch network chunk by chunk: give the model, not an ONNX export")
    decoder = None if recognizer.decoder_config.kind == "greedy" else recognizer.decoder
    results = transcribe_stream(recognizer.model, args.inputs[0], args.raw_rate, args.chunk_ms / 1000, decoder)
    configure_threads(args.threads or 1, level=logging.DEBUG)  # a chunk's small matrix products gain nothing from more
    print_stream(results, args.format)
    return 0


def _speaker_feature_map(args, model, decoder, paths: list[str]):
    """The features' mapping to the one speaker of ``paths`` (--same-speaker, --adapt), or None."""
    import torch

    from asr.speakers.normalization import for_one_speaker, one_speaker_normalization

    if args.adapt and not isinstance(model.network, torch.nn.Module):
        raise AsrError("--adapt fits a transform through the torch network: give the torch model, not an ONNX export")
    speaker = one_speaker_normalization(paths, model.network, model.log_mel) if args.same_speaker else None
    if args.adapt:
        from asr.speakers.adaptation import adapt_to_files

        speaker = adapt_to_files(model, paths, decoder, adapt_config(args), base=speaker, progress=True)
    return for_one_speaker(speaker)


def _transcribe_each(args, inputs, recognizer, feature_map) -> int:
    """Transcribe and print (or write) each input; one that fails is named on stderr and the
    others go on. 1 when any failed."""
    from asr.inference.files import render, write_output

    several, failures, rows = len(inputs) > 1, 0, []
    json_list = args.format == "json" and several and not args.output_dir  # one array at the end
    for item in inputs:
        try:
            if item.problem:
                raise AsrError(item.problem)
            transcript = recognizer.transcribe(
                item.path, word_timestamps=args.format != "txt", progress=True, feature_map=feature_map
            )
        except AsrError as err:
            failures += 1
            print(f"error: {err}", file=sys.stderr)
            continue
        output = render(transcript, args.format, with_file=several)
        if args.output_dir:
            print(write_output(args.output_dir, item, args.format, output), file=sys.stderr)
        elif json_list:
            rows.append(transcript.to_json())
        else:
            print(output, flush=True)
    if json_list:
        print(json.dumps(rows, ensure_ascii=False, indent=1))
    return 1 if failures else 0


def _cmd_evaluate(args) -> int:
    from asr.evaluation.evaluate import evaluate
    from asr.inference.loading import load_inference_model
    from asr.utils.threads import configure_threads

    configure_threads(args.threads)
    model = load_inference_model(args.model)
    decoder = model.decoder_config(**decoder_overrides(args))
    summary = evaluate(
        model,
        args.manifest,
        args.out,
        model_path=str(model.path),
        progress=True,
        decoder_config=decoder,
        adapt=adapt_config(args),
    )
    print(
        f"WER {100 * summary['wer']:.2f}% (S {summary['substitutions']}, D {summary['deletions']}, "
        f"I {summary['insertions']}; {summary['num_words']} words, {summary['num_utterances']} utterances)"
        f"  CER {100 * summary['cer']:.2f}%  [{decoder.kind}]  -> {Path(args.out) / 'summary.json'}"
    )
    if summary["num_failed"]:
        print(f"warning: {summary['num_failed']} utterance(s) could not be decoded; see report.md", file=sys.stderr)
    return 0


def _cmd_compare(args) -> int:
    from asr.evaluation.compare import compare, comparison_text, write_comparison

    comparison = compare(args.dir_a, args.dir_b, samples=args.samples, seed=args.seed)
    print(comparison_text(comparison, limit=args.show))
    if args.out:
        print(f"-> {write_comparison(comparison, args.out)}")
    return 0


def _cmd_summarize(args) -> int:
    from asr.evaluation.report.markdown import read_summaries, results_table

    print(results_table(read_summaries(args.dirs), pooled=args.pool))
    return 0


def register(sub) -> None:
    """Add transcribe, evaluate, compare and summarize to ``sub``."""
    _register_transcribe(sub)
    _register_evaluate(sub)
    _register_compare(sub)
    _register_summarize(sub)


def _register_transcribe(sub) -> None:
    p = add_command(
        sub,
        "transcribe",
        "print the transcript of audio files",
        "Transcribe audio files (any format soundfile reads, any rate and channel count, any length: long "
        "files are cut at pauses and decoded in batches): files, folders (every audio file under them), "
        "the files a list or a manifest names. A file that cannot be transcribed is named on stderr and "
        "the others go on (exit status 1).",
        examples(
            "asr transcribe talk.wav",
            "asr transcribe recordings/ -f srt -o subtitles/",
            "asr transcribe --manifest data/test.jsonl -f json > hyp.json",
            "find . -name '*.flac' | asr transcribe --files-from -",
            "asr transcribe clip.wav --model exp/english --lm words.arpa --lexicon lexicon.txt",
            "arecord -f S16_LE -r 16000 | asr transcribe --stream - --model exp/streaming",
            "asr transcribe --stream clip.wav --model exp/streaming -f json",
        ),
    )
    p.add_argument(
        "inputs", nargs="*", metavar="PATH", help="audio files, or folders to transcribe every audio file of"
    )
    p.add_argument(
        "--files-from", metavar="LIST", help="also the files or folders listed in LIST, one per line (- : stdin)"
    )
    p.add_argument(
        "--manifest",
        metavar="M.jsonl",
        help="also the audio_filepath of each line of this manifest (relative to its folder)",
    )
    p.add_argument(
        "--model",
        help=f"model.pt, an experiment folder or an ONNX export (asr export --onnx) (default: {DEFAULT_MODEL})",
    )
    p.add_argument(
        "-f",
        "--format",
        choices=["txt", "json", "srt", "vtt"],
        default="txt",
        help="txt: the text (FILE<TAB>TEXT when several files); json: text and word timings "
        "({file, text, words: [{word, start, end}]}, a list for several files); "
        "srt/vtt: subtitles, words grouped into lines of at most 42 characters",
    )
    p.add_argument(
        "-o",
        "--output-dir",
        metavar="DIR",
        help="write DIR/<name>.<format> per input instead of stdout (files found under a folder keep their subfolders)",
    )
    p.add_argument(
        "--same-speaker",
        action="store_true",
        help="the files are all one speaker: normalise their features by that voice's own statistics, "
        'pooled over all of them (models trained with [features] normalization = "speaker"; '
        "without this flag such a model uses its training set's global statistics); give it "
        "several seconds of the voice",
    )
    g = p.add_argument_group(
        "streaming (a model trained with bidirectional = false: recipes/yesno/conf_streaming.toml)"
    )
    g.add_argument(
        "--stream",
        action="store_true",
        help="read one file, or - (stdin: WAV, or raw 16-bit PCM with --raw-rate), block by block and print "
        "results as they come: txt: the partial text on stderr (redrawn on a terminal, a line each "
        "otherwise), the final text on stdout; json: one line per result {text, final, seconds}",
    )
    g.add_argument("--raw-rate", type=int, metavar="HZ", help="stdin is raw little-endian 16-bit mono PCM at HZ")
    g.add_argument("--chunk-ms", type=float, default=100.0, metavar="MS", help="audio read per step")
    add_decoder_options(p)
    add_adapt_options(p, "the files are all one speaker: adapt the model to that voice")
    p.add_argument("--nbest", type=int, metavar="N", help="hypotheses per file (json lists them as alternatives)")
    add_threads_option(p)
    p.set_defaults(func=_cmd_transcribe)


def _register_evaluate(sub) -> None:
    p = add_command(
        sub,
        "evaluate",
        "decode a manifest and score it",
        "Decode a manifest; write summary.json, report.md, report.html (self-contained, with plots), "
        "alignments.txt (sclite-style) and hyp.jsonl to the output folder.",
        examples(
            "asr evaluate --manifest data/test.jsonl -o exp/eval_test",
            "asr evaluate --model exp/fsdd --manifest data/test.jsonl -o exp/fsdd/eval_greedy --decoder greedy",
        ),
    )
    p.add_argument(
        "--model",
        help=f"model.pt, an experiment folder or an ONNX export (asr export --onnx) (default: {DEFAULT_MODEL})",
    )
    p.add_argument("--manifest", required=True, help="manifest to decode (JSON lines)")
    p.add_argument("-o", "--out", required=True, metavar="DIR", help="folder for the report")
    add_decoder_options(p)
    add_adapt_options(p, "adapt the model to each speaker label of the manifest")
    add_threads_option(p)
    p.set_defaults(func=_cmd_evaluate)


def _register_compare(sub) -> None:
    p = add_command(
        sub,
        "compare",
        "compare two evaluations of the same manifest",
        "Compare two folders written by `asr evaluate --out` on the same manifest: WER of each, the "
        "difference B - A with a paired-bootstrap confidence interval and p-value, and the utterances that "
        "got better or worse. Prints a summary; with --out, also writes OUT/compare.html (self-contained) "
        "and OUT/compare.json.",
        examples(
            "asr compare exp/a/eval_test exp/b/eval_test",
            "asr compare exp/a/eval_test exp/b/eval_test --out exp/b/compare_a",
        ),
    )
    p.add_argument("dir_a", metavar="DIR_A", help="evaluation folder of system A (the baseline)")
    p.add_argument("dir_b", metavar="DIR_B", help="evaluation folder of system B")
    p.add_argument("--out", metavar="DIR", help="folder for compare.html and compare.json")
    p.add_argument("--samples", type=int, default=1000, metavar="N", help="bootstrap samples")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    p.add_argument(
        "--show",
        type=int,
        default=10,
        metavar="N",
        help="utterances listed per direction (worse, better) in the terminal",
    )
    p.set_defaults(func=_cmd_compare)


def _register_summarize(sub) -> None:
    p = add_command(
        sub,
        "summarize",
        "tabulate several evaluations",
        "Print a Markdown table of evaluation folders (their summary.json), one row each.",
        examples("asr summarize exp/*/eval_test", "asr summarize exp/loso/*/eval_unseen --pool"),
    )
    p.add_argument("dirs", nargs="+", metavar="DIR", help="folders written by asr evaluate --out")
    p.add_argument(
        "--pool",
        action="store_true",
        help="add a row pooled over all of them (for evaluations of different sets, e.g. one per speaker)",
    )
    p.set_defaults(func=_cmd_summarize)
