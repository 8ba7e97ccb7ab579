"""Commands that fetch and shape data: download, import-kaldi, shard, synth."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from asr.cli.common import add_command, examples

TITLE = "data"


def _cmd_download(args) -> int:
    from asr.data.corpora import download_corpus

    print(download_corpus(args.corpus, args.out, url=args.url, subsets=args.subset, mirror=args.mirror))
    return 0


def _cmd_import_kaldi(args) -> int:
    from asr.data.corpora.kaldi import import_kaldi

    count = import_kaldi(args.data_dir, args.out)
    print(f"{args.out}: {count} utterances")
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


def _cmd_synth(args) -> int:
    from asr.data.dataset import write_manifest
    from asr.data.synth import assign_speakers, assign_voices, read_texts, synthesize
    from asr.utils.progress import progress as progress_bar

    texts = read_texts(args.text, args.max_texts, args.seed)
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    if args.speakers is not None:
        pairs = assign_speakers(texts, engines, args.speakers, args.seed)
    else:
        pairs = assign_voices(texts, engines, args.per_text, args.seed)
    progress = lambda it: progress_bar(it, total=len(pairs), desc="synthesizing", unit="clip")  # noqa: E731
    utterances, failures = synthesize(pairs, Path(args.out), args.jobs, progress)
    for message in failures:
        print(f"error: {message}", file=sys.stderr)
    manifest = Path(args.manifest or Path(args.out) / "manifest.jsonl")
    write_manifest(manifest, utterances)
    hours = sum(u.duration for u in utterances) / 3600
    print(f"{manifest}: {len(utterances)} utterances, {hours:.2f} h, {len({u.speaker for u in utterances})} voices")
    return 1 if failures and not utterances else 0


def register(sub) -> None:
    """Add download, import-kaldi, shard and synth to ``sub``."""
    _register_download(sub)
    _register_import_kaldi(sub)
    _register_shard(sub)
    _register_synth(sub)


def _register_download(sub) -> None:
    p = add_command(
        sub,
        "download",
        "download and unpack a corpus",
        "Fetch a corpus archive from its public address (or --url) and unpack it; prints the corpus root.",
        examples(
            "asr download yesno --out corpora",
            "asr download librispeech --out corpora --subset dev-clean --subset test-clean",
        ),
    )
    p.add_argument("corpus", choices=["yesno", "fsdd", "an4", "ljspeech", "librispeech"], help="which corpus")
    p.add_argument("--out", required=True, help="folder to unpack into")
    p.add_argument("--url", help="archive address to use instead of the corpus' public one")
    p.add_argument(
        "--subset",
        action="append",
        metavar="NAME",
        help="librispeech: a subset to fetch, e.g. dev-clean (repeatable; default: dev-clean, "
        "test-clean, train-clean-100)",
    )
    p.add_argument(
        "--mirror",
        metavar="URL",
        help="librispeech: address holding <subset>.tar.gz (default: https://www.openslr.org/resources/12)",
    )
    p.set_defaults(func=_cmd_download)


def _register_import_kaldi(sub) -> None:
    p = add_command(
        sub,
        "import-kaldi",
        "turn a Kaldi data directory into a manifest",
        "Read wav.scp (paths, or sph2pipe/sox decoding pipes: parsed, never run), text, utt2spk and segments "
        "of a Kaldi data directory and write a JSON-lines manifest (segments become offset/duration).",
        examples("asr import-kaldi kaldi/data/train --out data/train.jsonl"),
    )
    p.add_argument("data_dir", metavar="DIR", help="Kaldi data directory")
    p.add_argument("--out", required=True, help="manifest to write (JSON lines)")
    p.set_defaults(func=_cmd_import_kaldi)


def _register_shard(sub) -> None:
    p = add_command(
        sub,
        "shard",
        "write a manifest as WebDataset tar shards",
        "Write a manifest's audio and transcripts as WebDataset-format tar shards (KEY.flac/.wav + KEY.json) "
        "and DIR/index.json, for streamed training.",
        examples("asr shard data/train.jsonl --out shards/train", "asr train --train shards/train ..."),
    )
    p.add_argument("manifest", help="manifest to shard (JSON lines)")
    p.add_argument("--out", required=True, help="folder for shard-NNNNNN.tar and index.json")
    p.add_argument("--shard-size", type=int, default=1000, metavar="N", help="utterances per shard")
    p.add_argument("--seed", type=int, default=0, help="seed of the shuffle before sharding")
    p.add_argument("--no-shuffle", action="store_true", help="keep the manifest's order")
    p.set_defaults(func=_cmd_shard)


def _register_synth(sub) -> None:
    p = add_command(
        sub,
        "synth",
        "synthesize training speech with espeak-ng, mbrola, flite, festival, pico, rhvoice, piper and kokoro",
        "Read sentences aloud with many synthetic voices (voice, speaking rate and pitch drawn per sentence, "
        "or per speaker with --speakers) and write a manifest of the clips. Clips are cached under OUT by a "
        "hash of text and voice: a second run only makes what is missing. Needs the Debian packages "
        "espeak-ng, flite, festival, festvox-kallpc16k, festvox-kdlpc16k, festvox-us-slt-hts for the engines "
        "asked for; mbrola needs mbrola and its mbrola-* voices (components contrib and non-free; the "
        "voices' licence forbids commercial use); pico needs libttspico-utils, rhvoice needs rhvoice and "
        "rhvoice-english (both in Debian's non-free component); piper and kokoro need the tts extra "
        "(pip install 'asr[tts]'), and kokoro also espeak-ng, which phonemizes the text in US or British "
        "English for it.",
        examples(
            "asr synth --text data/english/synth_ljspeech.txt --max-texts 2000 --out data/english/synth",
            "asr synth --text digits.txt --speakers 20 --engines espeak-ng,flite --out synth/digits",
        ),
    )
    p.add_argument("--text", required=True, nargs="+", metavar="FILE", help="text files, one sentence per line")
    p.add_argument("--out", required=True, metavar="DIR", help="folder for the WAV files")
    p.add_argument("--manifest", metavar="FILE", help="manifest to write (default: OUT/manifest.jsonl)")
    p.add_argument(
        "--engines",
        default="espeak-ng,flite,festival",
        help="comma-separated engines (espeak-ng, mbrola, flite, festival, pico, rhvoice, piper, kokoro), taking "
        "turns sentence by sentence, or speaker by speaker",
    )
    voices = p.add_mutually_exclusive_group()
    voices.add_argument(
        "--per-text",
        type=int,
        default=1,
        metavar="N",
        help="voices reading each sentence, drawn anew for every sentence",
    )
    voices.add_argument(
        "--speakers",
        type=int,
        metavar="N",
        help="N voices that each read every sentence, so that each synthetic speaker has as "
        'much audio as a real one (for normalization = "speaker")',
    )
    p.add_argument("--max-texts", type=int, metavar="N", help="synthesize a seeded random sample of N sentences")
    p.add_argument("--seed", type=int, default=0, help="seed for the sample and the voices")
    p.add_argument(
        "--jobs",
        type=int,
        default=os.cpu_count() or 1,
        metavar="N",
        help="synthesizer processes at once (default: the number of CPUs, here %(default)s)",
    )
    p.set_defaults(func=_cmd_synth)
