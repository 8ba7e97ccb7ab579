"""Commands that make a model: prepare, train, average, export, lm, tune-lm."""

from __future__ import annotations

import json
from pathlib import Path

from asr.cli.common import (
    add_command,
    add_decoder_options,
    add_threads_option,
    decoder_overrides,
    examples,
    floats,
)
from asr.utils.errors import AsrError

TITLE = "train"
CORPORA = ["yesno", "fsdd", "an4", "ljspeech", "librispeech", "vctk", "english"]


def _cmd_prepare(args) -> int:
    from asr.data.corpora import prepare_corpus

    options = {}
    if args.holdout_speaker:
        if args.corpus != "fsdd":
            raise AsrError("--holdout-speaker applies to the fsdd corpus only")
        options["holdout_speaker"] = args.holdout_speaker
    if args.repeat_real is not None:
        if args.corpus != "english":
            raise AsrError("--repeat-real applies to the english corpus only")
        options["repeat_real"] = args.repeat_real
    counts = prepare_corpus(args.corpus, args.src, args.out, **options)
    for split, count in counts.items():
        print(f"{Path(args.out) / (split + '.jsonl')}: {count} utterances")
    return 0


def _cmd_train(args) -> int:
    from dataclasses import replace

    from asr.train.config import load_config
    from asr.train.loop import train
    from asr.utils.threads import configure_threads

    config = load_config(args.config, args.set or ())
    configure_threads(args.threads, reserve=config.train.num_workers)
    given = {"seed": args.seed, "epochs": args.epochs, "init_from": args.init}
    config = replace(config, train=replace(config.train, **{k: v for k, v in given.items() if v is not None}))
    result = train(config, args.train, args.dev, args.exp, resume=args.resume)
    if result.rank == 0:
        skipped = f", {result.skipped_batches} batch(es) skipped (non-finite)" if result.skipped_batches else ""
        print(
            f"{Path(args.exp) / 'model.pt'}: best epoch {result.best_epoch}, "
            f"dev WER {100 * result.best_dev_wer:.2f}%, {result.seconds:.0f}s{skipped}"
        )
    return 0


def _cmd_average(args) -> int:
    from asr.model.checkpoint import atomic_save
    from asr.train.averaging import average_models, select_snapshots

    if len(args.models) == 1 and Path(args.models[0]).is_dir():
        paths = select_snapshots(args.models[0], last=args.last, best=args.best)
    elif args.last is not None or args.best is not None:
        raise AsrError("--last/--best choose snapshots of one experiment folder; give that folder alone")
    else:
        paths = [Path(p) for p in args.models]
    atomic_save(average_models(paths), args.out)
    print(f"{args.out}: average of {len(paths)} model(s): {', '.join(p.name for p in paths)}")
    return 0


def _cmd_export(args) -> int:
    from asr.inference.export import export_model
    from asr.inference.onnx import export_onnx

    if (args.onnx or args.int8) and args.half:
        raise AsrError("--half is for the torch export; an ONNX export is float32 (--onnx) and/or int8 (--int8)")
    if args.onnx or args.int8:
        target = export_onnx(args.model, args.out, int8=args.int8, fp32=args.onnx)[0]
    else:
        target = export_model(args.model, args.out, half=args.half)
    sizes = ", ".join(
        f"{p.name} {p.stat().st_size / 1e6:.1f} MB" for p in sorted(target.parent.iterdir()) if p.is_file()
    )
    print(f"{target.parent}: {sizes}")
    return 0


def _cmd_lm_build(args) -> int:
    from asr.decode.lm import build_lm
    from asr.model.checkpoint import load_model

    tokenizer = load_model(args.model).tokenizer if args.model else None
    lexicon = args.lexicon
    if args.vocab_from and not lexicon:
        lexicon = str(Path(args.out).with_suffix(".lexicon.txt"))
    built = build_lm(
        args.text,
        args.order,
        args.out,
        units=args.units,
        tokenizer=tokenizer,
        lexicon=lexicon,
        vocabulary_manifests=args.vocab_from or [],
        exclude=args.exclude or [],
    )
    left_out = f" ({built.excluded} left out: in {', '.join(args.exclude)})" if args.exclude else ""
    print(
        f"{built.arpa}: order {args.order}, {built.sentences} sentences{left_out}, {built.vocabulary} words, "
        f"n-grams {built.ngrams}"
    )
    if built.lexicon:
        print(f"{built.lexicon}: lexicon")
    return 0


def _cmd_lm_mix(args) -> int:
    from asr.decode.arpa import interpolate, mixture_table, read_arpa, tune_mixture, write_arpa
    from asr.decode.lm import normalized_sentences

    a, b = read_arpa(args.lm_a), read_arpa(args.lm_b)
    if args.weights is not None and not args.tune_on:
        raise AsrError("--weights is the grid of --tune-on; with one weight give --weight")
    tuned = ""
    if args.tune_on:
        sentences = [s.split() for s in normalized_sentences(args.tune_on)]
        tuning = tune_mixture(a, b, sentences, args.weights or [round(0.1 * i, 1) for i in range(1, 10)])
        print(
            f"perplexity on {', '.join(args.tune_on)} ({len(sentences)} sentences, {tuning.words} words, "
            f"{tuning.unknown} outside both vocabularies, scored as <unk>):"
        )
        print(mixture_table(tuning, Path(args.lm_a).name))
        weight, mixed = tuning.weight, tuning.model
        tuned = f"; best of {len(tuning.perplexities)} weights by perplexity {tuning.perplexity:.2f} on the tuning text"
    else:
        weight, mixed = args.weight, interpolate(a, b, args.weight)
    write_arpa(mixed, args.out)
    print(
        f"{args.out}: {weight:g} x {args.lm_a} + {1 - weight:g} x {args.lm_b}, order {mixed.order}, "
        f"{len(mixed.words)} words, n-grams {mixed.ngram_counts}, {_file_size(args.out)}{tuned}"
    )
    return 0


def _cmd_lm_prune(args) -> int:
    from asr.decode.arpa import prune, read_arpa, write_arpa

    if args.threshold < 0:
        raise AsrError(f"--threshold must be >= 0, not {args.threshold}")
    model = read_arpa(args.lm)
    pruned = prune(model, args.threshold)
    write_arpa(pruned, args.out)
    print(
        f"{args.out}: pruned {args.lm} at threshold {args.threshold:g}: n-grams {model.ngram_counts} -> "
        f"{pruned.ngram_counts}, {_file_size(args.lm)} -> {_file_size(args.out)}"
    )
    return 0


def _cmd_lm_lexicon(args) -> int:
    from asr.decode.arpa import check_arpa
    from asr.decode.lm import arpa_vocabulary, lexicon_lines
    from asr.utils.atomic import write_text_atomic

    check_arpa(args.lm)
    lines, unspellable = lexicon_lines(arpa_vocabulary(args.lm), _lm_tokenizer(args.model))
    if not lines:
        raise AsrError(f"{args.lm}: none of its words can be spelled in the model's tokens; no lexicon written")
    write_text_atomic(args.out, "".join(lines))
    skipped = (
        f"; {len(unspellable)} word(s) the tokens cannot spell left out (first: {unspellable[0]!r})"
        if unspellable
        else ""
    )
    print(f"{args.out}: lexicon of {len(lines)} words of {args.lm} spelled in the model's tokens{skipped}")
    return 0


def _cmd_lm_restrict(args) -> int:
    from asr.decode.arpa import most_probable_words, read_arpa, restrict_vocabulary, write_arpa
    from asr.decode.lm import spell

    if args.max_words is not None and args.max_words < 1:
        raise AsrError(f"--max-words must be at least 1, not {args.max_words}")
    model = read_arpa(args.lm)
    tokenizer = _lm_tokenizer(args.model)
    spellable = {word for word in model.words if spell(word, tokenizer) is not None}
    kept = spellable
    if args.max_words is not None:
        kept = most_probable_words(model, args.max_words, among=spellable)
    restricted = restrict_vocabulary(model, kept.__contains__)
    write_arpa(restricted, args.out)
    unspellable = sorted(model.words - spellable)
    first = f" (first: {unspellable[0]!r})" if unspellable else ""
    rare = len(spellable) - len(kept)
    beyond = f", {rare} beyond the {args.max_words} most probable removed" if args.max_words is not None else ""
    print(
        f"{args.out}: {len(restricted.words)} of {len(model.words)} words of {args.lm} kept, "
        f"{len(unspellable)} the model's tokens cannot spell removed{first}{beyond} "
        f"(their unigram mass goes to <unk>), n-grams {model.ngram_counts} -> {restricted.ngram_counts}"
    )
    return 0


def _lm_tokenizer(model_path: str | None):
    """The tokenizer of the model at ``model_path``, else characters."""
    from asr.data.text import CharTokenizer
    from asr.model.checkpoint import load_model

    return load_model(model_path).tokenizer if model_path else CharTokenizer()


def _file_size(path: str | Path) -> str:
    size = Path(path).stat().st_size
    return f"{size / 1e6:.2f} MB" if size >= 1e6 else f"{size / 1e3:.1f} kB"


def _cmd_tune_lm(args) -> int:
    from asr.evaluation.tune import tune_lm, tuning_table
    from asr.model.checkpoint import load_model, store_decoder_settings

    model = load_model(args.model)
    base = model.decoder_config(**decoder_overrides(args) | {"kind": "beam"})
    result = tune_lm(model, args.manifest, base, args.lm_weights, args.word_scores, progress=True)
    print(tuning_table(result))
    print(
        f"\ngreedy WER {100 * result.greedy_wer:.2f}%; best beam WER "
        f"{100 * min(p.wer for p in result.points):.2f}% at LM weight {result.best.lm_weight:g}, "
        f"word score {result.best.word_score:g} ({result.num_utterances} utterances)"
    )
    if args.out:
        Path(args.out).write_text(json.dumps(result.to_json(), indent=1) + "\n")
    if not args.no_save:
        print(f"saved as the default decoder of {store_decoder_settings(args.model, result.best_settings())}")
    return 0


def register(sub) -> None:
    """Add prepare, train, average, export, lm and tune-lm to ``sub``."""
    _register_prepare(sub)
    _register_train(sub)
    _register_average(sub)
    _register_export(sub)
    _register_lm(sub)
    _register_tune_lm(sub)


def _register_prepare(sub) -> None:
    p = add_command(
        sub,
        "prepare",
        "write JSON-lines manifests for a corpus",
        "Read a corpus in its own layout and write train/dev/test manifests.",
        examples(
            'asr prepare yesno --src "$(asr download yesno --out corpora)" --out data/yesno',
            "asr prepare fsdd --src corpora/fsdd --out data/fsdd_theo --holdout-speaker theo",
        ),
    )
    p.add_argument(
        "corpus",
        choices=CORPORA,
        help="which corpus layout to read (english: SRC holds ljspeech/, an4/ and fsdd/ together, "
        "and synth_*.txt files with text to synthesize are written too)",
    )
    p.add_argument("--src", required=True, help="folder holding the corpus as downloaded")
    p.add_argument("--out", required=True, help="folder for <split>.jsonl")
    p.add_argument(
        "--holdout-speaker", metavar="NAME", help="fsdd only: test on every clip of this speaker, train on the others"
    )
    p.add_argument(
        "--repeat-real",
        type=int,
        metavar="N",
        help="english only: list the real LJ Speech and AN4 training clips N times (default 1), so they "
        "weigh more beside hours of synthesized speech",
    )
    p.set_defaults(func=_cmd_prepare)


def _register_train(sub) -> None:
    p = add_command(
        sub,
        "train",
        "train an acoustic model",
        "Train a CTC model; the best epoch by dev WER is packaged as EXP/model.pt, beside the resolved "
        "config (EXP/config.toml: its base files and --set overrides applied).",
        examples(
            "asr train --config recipes/yesno/conf.toml --train data/yesno/train.jsonl \\",
            "    --dev data/yesno/dev.jsonl --exp exp/yesno",
            "asr train --config recipes/yesno/conf.toml --set train.epochs=5 --set model.hidden_size=64 \\",
            "    --train data/yesno/train.jsonl --dev data/yesno/dev.jsonl --exp exp/yesno_small",
            "asr train --config recipes/yesno/conf.toml ... --exp exp/yesno --resume   # after a stop",
        ),
    )
    p.add_argument(
        "--config",
        required=True,
        help='TOML file with [features] [augment] [model] [train] [tokenizer]; base = "other.toml" '
        "at its top takes every setting it does not give from that file",
    )
    p.add_argument(
        "--set",
        action="append",
        metavar="SECTION.KEY=VALUE",
        help="override one setting of the config, e.g. train.epochs=5 or augment.speed_factors=[0.9,1.1] "
        "(the value is read as TOML, else as a string; repeatable)",
    )
    p.add_argument(
        "--train",
        required=True,
        help="training manifest (JSON lines), or shards: a folder, DIR/shard-{000000..000009}.tar, or URLs",
    )
    p.add_argument("--dev", required=True, help="validation manifest, for dev loss/WER and model selection")
    p.add_argument("--exp", required=True, help="experiment folder for model.pt, logs and checkpoints")
    p.add_argument(
        "--resume", action="store_true", help="continue from EXP/last.pt (mid-epoch when it was written mid-epoch)"
    )
    p.add_argument("--seed", type=int, help="override [train] seed")
    p.add_argument("--epochs", type=int, help="override [train] epochs")
    add_threads_option(p)
    p.add_argument(
        "--init",
        metavar="MODEL",
        help="start from this packaged model's weights (fine-tuning; override [train] init_from)",
    )
    p.set_defaults(func=_cmd_train)


def _register_average(sub) -> None:
    p = add_command(
        sub,
        "average",
        "average the weights of several models",
        "Average packaged models: an experiment folder with --last N or --best N (its checkpoints/ "
        "snapshots), or model files.",
        examples("asr average exp/english --best 3 --out exp/english/average.pt"),
    )
    p.add_argument("models", nargs="+", metavar="MODEL", help="an experiment folder, or model .pt files")
    p.add_argument("--out", required=True, help="packaged model to write")
    choice = p.add_mutually_exclusive_group()
    choice.add_argument("--last", type=int, metavar="N", help="the N latest epoch snapshots")
    choice.add_argument("--best", type=int, metavar="N", help="the N best epoch snapshots by dev WER")
    p.set_defaults(func=_cmd_average)


def _register_export(sub) -> None:
    p = add_command(
        sub,
        "export",
        "copy a model and its LM/lexicon into one folder that can ship",
        "Write OUT/model.pt with copies of the LM and lexicon its stored decoder settings name (asr tune-lm), "
        "referred to by relative paths, so OUT can move anywhere (e.g. asr/pretrained/english, the default "
        "model). With --onnx and/or --int8, write the acoustic model as ONNX instead (model.onnx, "
        "model.int8.onnx: dynamic int8 quantization) with config.json and the decoder's files: asr transcribe and "
        "asr evaluate run such a folder through onnxruntime (pip install 'asr[onnx]').",
        examples(
            "asr export --model exp/english --out asr/pretrained/english --half",
            "asr export --model exp/english --out exp/english_onnx --onnx --int8",
            "asr transcribe talk.wav --model exp/english_onnx",
        ),
    )
    p.add_argument("--model", required=True, help="model.pt or an experiment folder")
    p.add_argument("--out", required=True, metavar="DIR", help="folder to write")
    p.add_argument("--half", action="store_true", help="store the weights in float16 (half the size)")
    p.add_argument("--onnx", action="store_true", help="write model.onnx (float32) for onnxruntime")
    p.add_argument("--int8", action="store_true", help="write model.int8.onnx (dynamic int8 quantization)")
    p.set_defaults(func=_cmd_export)


def _register_lm(sub) -> None:
    p = add_command(
        sub,
        "lm",
        "language models for beam search",
        "Build n-gram language models (ARPA, modified Kneser-Ney) and lexicons; mix, prune and restrict "
        "ARPA models, wherever they were built.",
        examples(
            "asr lm build --text data/train.jsonl --order 3 --out lm/words.arpa --vocab-from data/train.jsonl",
            "asr lm mix general.arpa lm/words.arpa --tune-on data/dev.jsonl --out lm/mixed.arpa",
            "asr lm prune lm/mixed.arpa --threshold 1e-6 --out lm/pruned.arpa",
        ),
    )
    actions = p.add_subparsers(dest="lm_command", required=True, metavar="ACTION")
    _register_lm_build(actions)
    _register_lm_mix(actions)
    _register_lm_prune(actions)
    _register_lm_lexicon(actions)
    _register_lm_restrict(actions)


def _register_lm_build(actions) -> None:
    b = add_command(
        actions,
        "build",
        "estimate an n-gram LM from text and write it as ARPA",
        "Estimate an interpolated modified Kneser-Ney n-gram LM from text (one sentence per line, or a "
        "JSON-lines manifest's text fields), normalised like every transcript, and write it as ARPA.",
    )
    b.add_argument("--text", required=True, nargs="+", metavar="FILE", help="text files or manifests")
    b.add_argument("--order", type=int, default=3, help="n-gram order")
    b.add_argument("--out", required=True, metavar="LM.arpa", help="the ARPA file to write")
    b.add_argument(
        "--units",
        choices=["words", "tokens"],
        default="words",
        help="words: a word LM for lexicon decoding; tokens: an LM over the model's tokens with | "
        "between words, for lexicon-free decoding",
    )
    b.add_argument("--lexicon", metavar="FILE", help="also write the LM's words spelled in the model's tokens")
    b.add_argument(
        "--vocab-from",
        nargs="+",
        metavar="MANIFEST",
        help="add these manifests' words to the vocabulary and write a lexicon (to --lexicon, else LM.lexicon.txt)",
    )
    b.add_argument(
        "--exclude",
        nargs="+",
        metavar="FILE",
        help="leave out sentences equal to a transcript of these text files or manifests (the dev set that "
        "asr tune-lm tunes on, so that its WER is measured on text the LM never read)",
    )
    b.add_argument("--model", help="spell the lexicon with this model's tokenizer (default: characters)")
    b.set_defaults(func=_cmd_lm_build)


def _register_lm_mix(actions) -> None:
    m = add_command(
        actions,
        "mix",
        "linearly interpolate two ARPA LMs",
        "Mix two ARPA LMs: W p_A + (1 - W) p_B for every n-gram of either, with backoff weights recomputed "
        "so that every context sums to one over both vocabularies (as SRILM's ngram -mix-lm). With "
        "--tune-on, W is chosen from a grid by perplexity on that text.",
    )
    m.add_argument("lm_a", metavar="A.arpa", help="the first LM (weighted by W)")
    m.add_argument("lm_b", metavar="B.arpa", help="the second LM (weighted by 1 - W)")
    weight = m.add_mutually_exclusive_group(required=True)
    weight.add_argument("--weight", type=float, metavar="W", help="weight of A, in [0, 1]")
    weight.add_argument(
        "--tune-on",
        nargs="+",
        metavar="FILE",
        help="text files or manifests (never the test set): print the perplexity at each weight "
        "of --weights and write the mixture with the lowest",
    )
    m.add_argument(
        "--weights",
        type=floats,
        metavar="LIST",
        help="comma-separated weights of A tried with --tune-on (default: 0.1,0.2,...,0.9)",
    )
    m.add_argument("--out", required=True, metavar="M.arpa", help="the ARPA file to write")
    m.set_defaults(func=_cmd_lm_mix)


def _register_lm_prune(actions) -> None:
    r = add_command(
        actions,
        "prune",
        "drop n-grams that barely change the LM",
        "Remove n-grams above the unigrams whose weighted difference from their backoff estimate is below "
        "a threshold (Seymore and Rosenfeld), highest order first, and recompute the backoff weights. "
        "Prints the n-gram counts and file sizes before and after.",
    )
    r.add_argument("lm", metavar="IN.arpa", help="the LM to prune")
    r.add_argument(
        "--threshold",
        type=float,
        required=True,
        metavar="T",
        help="weighted-difference threshold (larger prunes more; try 1e-7 to 1e-5)",
    )
    r.add_argument("--out", required=True, metavar="OUT.arpa", help="the ARPA file to write")
    r.set_defaults(func=_cmd_lm_prune)


def _register_lm_lexicon(actions) -> None:
    x = add_command(
        actions,
        "lexicon",
        "spell an LM's vocabulary in a model's tokens",
        "Write a lexicon for an ARPA word LM: each of its words spelled in the model's tokens "
        "(word<TAB>t o k e n s |). Words the tokens cannot spell are left out and counted.",
    )
    x.add_argument("lm", metavar="LM.arpa", help="the word LM")
    x.add_argument("--out", required=True, metavar="FILE", help="the lexicon to write")
    x.add_argument("--model", help="spell with this model's tokenizer (default: characters)")
    x.set_defaults(func=_cmd_lm_lexicon)


def _register_lm_restrict(actions) -> None:
    t = add_command(
        actions,
        "restrict",
        "keep only the words a model can spell (or the N most probable)",
        "Remove from an ARPA LM every word the model's tokens cannot spell, and with --max-words all but "
        "the N most probable of the rest (their unigram mass goes to <unk>, their n-grams are dropped), "
        "and recompute the backoff weights. A smaller vocabulary makes the lexicon beam decoder start "
        "faster: its prefix tree is built from every word at each start.",
    )
    t.add_argument("lm", metavar="IN.arpa", help="the LM to restrict")
    t.add_argument("--out", required=True, metavar="OUT.arpa", help="the ARPA file to write")
    t.add_argument("--model", help="the model whose tokenizer spells the words (default: characters)")
    t.add_argument(
        "--max-words",
        type=int,
        metavar="N",
        help="also keep only the N spellable words of highest unigram probability (default: all)",
    )
    t.set_defaults(func=_cmd_lm_restrict)


def _register_tune_lm(sub) -> None:
    p = add_command(
        sub,
        "tune-lm",
        "search LM weight x word score on a dev set",
        "Run the acoustic model over a dev manifest once, beam-decode it at every LM weight x word score, "
        "print the WER table and store the best settings in the model as its default decoder.",
        examples(
            "asr tune-lm --model exp/english --manifest data/dev.jsonl --lm lm/words.arpa --lexicon lm/lexicon.txt",
            "asr tune-lm --model exp/english --manifest data/dev.jsonl --lm lm/words.arpa --lexicon lm/lexicon.txt \\",
            "    --lm-weights 0.5,1 --word-scores=-1,0 --no-save",
        ),
    )
    p.add_argument("--model", required=True, help="model.pt or an experiment folder")
    p.add_argument("--manifest", required=True, help="dev manifest (never the test set)")
    p.add_argument(
        "--lm-weights", type=floats, default="0,0.25,0.5,1,1.5,2", metavar="LIST", help="comma-separated LM weights"
    )
    p.add_argument(
        "--word-scores",
        type=floats,
        default="-1,0,1,2",
        metavar="LIST",
        help="comma-separated word scores (write --word-scores=-2,0,2 when the list starts with a minus)",
    )
    p.add_argument("--out", metavar="FILE.json", help="also write the table as JSON")
    p.add_argument("--no-save", action="store_true", help="print only; leave the model unchanged")
    add_decoder_options(p, tuning=True)
    p.set_defaults(func=_cmd_tune_lm)
