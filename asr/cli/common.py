"""What the command groups share: the help layout, ``-v`` after any command, and the decoder,
speaker-adaptation and thread options."""

from __future__ import annotations

import argparse
import textwrap


class HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Descriptions and examples as written, each option's default after its help; not for an
    option without one (its help says what happens then) nor for a flag."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None or action.default is False:
            return action.help
        return super()._get_help_string(action)


class CommandParser(argparse.ArgumentParser):
    """A command's parser; ``summary`` is its line in the grouped listing of ``asr --help``."""

    def __init__(self, *args, summary: str = "", **kwargs):
        super().__init__(*args, **kwargs)
        self.summary = summary


def verbose_option(parser: argparse.ArgumentParser, default=False) -> None:
    """``-v/--verbose``: on the top level with a default, on each command without one (so that it
    keeps what was given before the command)."""
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        default=default,
        help="log debug messages; show the traceback of an unexpected error",
    )


_VERBOSE = argparse.ArgumentParser(add_help=False)
verbose_option(_VERBOSE, default=argparse.SUPPRESS)


def examples(*lines: str) -> str:
    """An epilog listing example command lines."""
    return "examples:\n" + "\n".join(f"  {line}" for line in lines)


def add_command(subparsers, name: str, summary: str, description: str, epilog: str | None = None):
    """A command's parser: ``summary`` for listings, ``description`` (wrapped here) and ``epilog``
    (as written) on its own ``--help``, defaults shown, ``-v`` accepted."""
    return subparsers.add_parser(
        name,
        summary=summary,
        help=summary,
        description=textwrap.fill(description, 88),
        epilog=epilog,
        formatter_class=HelpFormatter,
        parents=[_VERBOSE],
    )


def floats(text: str) -> list[float]:
    """A comma-separated list of numbers."""
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def positive_int(text: str) -> int:
    """A whole number >= 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return value


def add_threads_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--threads",
        type=positive_int,
        metavar="N",
        help="torch compute threads (default: OMP_NUM_THREADS when set, else the cores free to this "
        "process: its CPU affinity less the other processes running now)",
    )


def add_decoder_options(p: argparse.ArgumentParser, tuning: bool = False) -> None:
    """Decoder options; unset ones fall back to the model's stored defaults (asr tune-lm), then greedy."""
    g = p.add_argument_group("decoding (default: the model's stored settings, else greedy)")
    if not tuning:
        g.add_argument(
            "--decoder", choices=["greedy", "beam"], help="greedy, or beam search (implied by --lm/--lexicon)"
        )
    else:
        p.set_defaults(decoder="beam")
    g.add_argument(
        "--lm",
        metavar="LM.arpa",
        help="n-gram LM (asr lm build): over words (with --lexicon; without one, its vocabulary is spelled "
        "in the model's tokens into LM.arpa.<hash>.lexicon.txt), or over tokens (lexicon-free)",
    )
    g.add_argument("--lexicon", metavar="FILE", help="lexicon: restricts hypotheses to its words")
    g.add_argument("--beam-size", type=int, metavar="N", help="hypotheses kept per frame (else 50)")
    g.add_argument(
        "--beam-threshold", type=float, metavar="X", help="prune hypotheses this far below the best (else 10)"
    )
    g.add_argument(
        "--beam-size-token",
        type=int,
        metavar="N",
        help="tokens tried per frame, the most probable first (else all)",
    )
    if not tuning:
        g.add_argument("--lm-weight", type=float, metavar="W", help="LM weight (else 1)")
        g.add_argument("--word-score", type=float, metavar="X", help="score added per word (else 0)")
    else:
        p.set_defaults(lm_weight=None, word_score=None)
    g.add_argument(
        "--unk-score", type=float, metavar="X", help="score per out-of-lexicon word (else -inf: none allowed)"
    )


def decoder_overrides(args) -> dict:
    """The decoder options given on the command line (None where not given)."""
    return {
        "kind": args.decoder,
        "lm": args.lm,
        "lexicon": args.lexicon,
        "beam_size": args.beam_size,
        "beam_threshold": args.beam_threshold,
        "beam_size_token": args.beam_size_token,
        "lm_weight": args.lm_weight,
        "word_score": args.word_score,
        "unk_score": args.unk_score,
        "nbest": getattr(args, "nbest", None),
    }


def add_adapt_options(p: argparse.ArgumentParser, what: str) -> None:
    """Two-pass speaker adaptation (asr.speakers.adaptation)."""
    g = p.add_argument_group("speaker adaptation (two passes; no reference transcript is read)")
    g.add_argument(
        "--adapt",
        action="store_true",
        help=f"{what}: decode, fit a feature transform to each voice through the frozen network with "
        "the first pass's transcripts, decode again",
    )
    g.add_argument(
        "--adapt-transform",
        choices=["diagonal", "full"],
        default="diagonal",
        help="diagonal: a scale and a bias per mel bin; full: a matrix over the bins and a bias (more to fit)",
    )
    g.add_argument("--adapt-epochs", type=int, default=20, metavar="N", help="passes over the first pass's transcripts")
    g.add_argument(
        "--adapt-seed", type=int, default=0, metavar="N", help="seeds the order and augmentation of the fitting"
    )


def adapt_config(args):
    """The :class:`asr.speakers.adaptation.AdaptConfig` asked for, or None without ``--adapt``."""
    from asr.speakers.adaptation import AdaptConfig

    if not args.adapt:
        return None
    return AdaptConfig(transform=args.adapt_transform, epochs=args.adapt_epochs, seed=args.adapt_seed)
