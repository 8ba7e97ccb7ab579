"""Command-line interface: argument parsing only; the work happens in the library modules."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from asr import __version__
from asr.errors import AsrError

log = logging.getLogger("asr")


def _cmd_prepare(args) -> int:
    from asr.corpora import prepare_corpus

    options = {}
    if args.holdout_speaker:
        if args.corpus != "fsdd":
            raise AsrError("--holdout-speaker applies to the fsdd corpus only")
        options["holdout_speaker"] = args.holdout_speaker
    counts = prepare_corpus(args.corpus, args.src, args.out, **options)
    for split, count in counts.items():
        print(f"{Path(args.out) / (split + '.jsonl')}: {count} utterances")
    return 0


def _cmd_download(args) -> int:
    from asr.corpora import CORPORA
    from asr.corpora.download import fetch

    url = args.url or CORPORA[args.corpus].DOWNLOAD_URL
    if not url:
        raise AsrError(f"corpus {args.corpus!r} has no public download address; use --url or --src")
    print(fetch(url, args.out))
    return 0


def _cmd_train(args) -> int:
    from dataclasses import replace

    from asr.experiment import load_config
    from asr.train import train

    config = load_config(args.config)
    if args.seed is not None:
        config = replace(config, train=replace(config.train, seed=args.seed))
    if args.epochs is not None:
        config = replace(config, train=replace(config.train, epochs=args.epochs))
    result = train(config, args.train, args.dev, args.exp, resume=args.resume)
    if result.rank == 0:
        skipped = f", {result.skipped_batches} batch(es) skipped (non-finite)" if result.skipped_batches else ""
        print(
            f"{Path(args.exp) / 'model.pt'}: best epoch {result.best_epoch}, "
            f"dev WER {100 * result.best_dev_wer:.2f}%, {result.seconds:.0f}s{skipped}"
        )
    return 0


def _cmd_shard(args) -> int:
    from asr.data import read_manifest
    from asr.shards import write_shards

    utterances = read_manifest(args.manifest, skip_missing=True)
    index = write_shards(utterances, args.out, args.shard_size, None if args.no_shuffle else args.seed)
    skipped = f", {len(index['skipped'])} unreadable file(s) left out" if index["skipped"] else ""
    print(
        f"{args.out}: {len(index['shards'])} shard(s), {index['utterances']} utterances, "
        f"{index['seconds'] / 3600:.2f} h{skipped}"
    )
    return 0


def _cmd_average(args) -> int:
    from asr.averaging import average_models, select_snapshots
    from asr.checkpoint import atomic_save

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
    from asr.checkpoint import load_model
    from asr.evaluate import evaluate

    model = load_model(args.model)
    summary = evaluate(model, args.manifest, args.out, model_path=str(args.model), progress=True)
    print(
        f"WER {100 * summary['wer']:.2f}% (S {summary['substitutions']}, D {summary['deletions']}, "
        f"I {summary['insertions']}; {summary['num_words']} words, {summary['num_utterances']} utterances)"
        f"  CER {100 * summary['cer']:.2f}%  -> {Path(args.out) / 'summary.json'}"
    )
    if summary["num_failed"]:
        print(f"warning: {summary['num_failed']} utterance(s) could not be decoded; see report.md", file=sys.stderr)
    return 0


def _cmd_transcribe(args) -> int:
    from asr.checkpoint import load_model
    from asr.transcribe import transcribe_file

    model = load_model(args.model)
    failures = 0
    for path in args.files:
        try:
            text = transcribe_file(model, path)
        except AsrError as err:
            failures += 1
            print(f"error: {err}", file=sys.stderr)
            continue
        if args.format == "json":
            print(json.dumps({"file": path, "text": text}, ensure_ascii=False))
        elif len(args.files) > 1:
            print(f"{path}\t{text}")
        else:
            print(text)
        sys.stdout.flush()
    return 1 if failures else 0


def _cmd_summarize(args) -> int:
    from asr.report import results_table

    summaries = {}
    for folder in args.dirs:
        path = Path(folder) / "summary.json"
        try:
            summaries[str(folder)] = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as err:
            raise AsrError(f"{path}: cannot read evaluation summary ({err})") from None
    print(results_table(summaries))
    return 0


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
    p.add_argument("corpus", choices=["yesno", "fsdd", "an4", "ljspeech"], help="which corpus layout to read")
    p.add_argument("--src", required=True, help="folder holding the corpus as downloaded")
    p.add_argument("--out", required=True, help="folder for <split>.jsonl")
    p.add_argument("--holdout-speaker", metavar="NAME",
                   help="fsdd only: test on every clip of this speaker, train on the others")
    p.set_defaults(func=_cmd_prepare)

    p = sub.add_parser("download", help="download and unpack a corpus",
                       description="Fetch a corpus archive from its public address (or --url) and unpack it.")
    p.add_argument("corpus", choices=["yesno", "fsdd", "an4", "ljspeech"])
    p.add_argument("--out", required=True, help="folder to unpack into; prints the corpus root")
    p.add_argument("--url", help="archive address to use instead of the corpus' public one")
    p.set_defaults(func=_cmd_download)

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
                       description="Decode a manifest; write summary.json, report.md and hyp.jsonl to --out.")
    p.add_argument("--model", required=True, help="model.pt or an experiment folder")
    p.add_argument("--manifest", required=True, help="manifest to decode (JSON lines)")
    p.add_argument("--out", required=True, help="folder for the report")
    p.set_defaults(func=_cmd_evaluate)

    p = sub.add_parser("transcribe", help="print the transcript of audio files",
                       description="Transcribe audio files (any format soundfile reads, any rate and channel count).")
    p.add_argument("files", nargs="+", metavar="FILE", help="audio files")
    p.add_argument("--model", required=True, help="model.pt or an experiment folder")
    p.add_argument("--format", choices=["txt", "json"], default="txt",
                   help="txt: one line per file (FILE<TAB>TEXT when several); json: one object per line")
    p.set_defaults(func=_cmd_transcribe)
    p = sub.add_parser("summarize", help="tabulate several evaluations",
                       description="Print a Markdown table of evaluation folders (summary.json), pooled over all.")
    p.add_argument("dirs", nargs="+", metavar="DIR", help="folders written by asr evaluate --out")
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
