"""The ``asr`` command: the top-level parser with its commands grouped by task, and :func:`main`.

Each group's module (:mod:`asr.cli.use`, :mod:`asr.cli.train`, :mod:`asr.cli.data`,
:mod:`asr.cli.research`) adds its commands' parsers; the work happens in the library modules.
"""

from __future__ import annotations

import argparse
import logging
import sys

from asr import __version__
from asr.cli import data, research, train, use
from asr.cli.common import CommandParser, HelpFormatter, examples, verbose_option
from asr.utils.errors import AsrError

log = logging.getLogger("asr")

GROUPS = (use, train, data, research)  # in the order `asr --help` lists them

DESCRIPTION = "Train, evaluate and run CTC speech recognisers (log-mel -> BiLSTM -> CTC)."

EXAMPLES = (
    examples(
        "asr transcribe talk.wav                            # the English model that ships with asr",
        "asr transcribe recordings/ -f srt -o subtitles/    # every audio file under a folder",
        "asr evaluate --manifest data/test.jsonl -o exp/eval_test",
        "asr train --config recipes/yesno/conf.toml --set train.epochs=5 --train data/yesno/train.jsonl \\",
        "    --dev data/yesno/dev.jsonl --exp exp/yesno",
        "asr summarize exp/*/eval_test",
    )
    + "\n\nRun `asr COMMAND --help` for a command's options."
)


def _command_listing(parsers: dict[str, CommandParser], groups: dict[str, list[str]]) -> str:
    """The commands under their group titles, each with its one-line summary."""
    width = max(len(name) for names in groups.values() for name in names) + 4
    blocks = []
    for title, names in groups.items():
        blocks.append("\n".join([f"{title}:", *(f"  {name:<{width}}{parsers[name].summary}" for name in names)]))
    return "\n\n".join(blocks)


def build_parser() -> argparse.ArgumentParser:
    """The ``asr`` parser: every command of every group."""
    parser = argparse.ArgumentParser(
        prog="asr", usage="%(prog)s [-h] [--version] [-v] COMMAND ...", formatter_class=HelpFormatter, epilog=EXAMPLES
    )
    parser.add_argument("--version", action="version", version=f"asr {__version__}")
    verbose_option(parser)
    # argparse's own flat list of commands is hidden: the description lists them by group
    sub = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", parser_class=CommandParser, prog="asr", help=argparse.SUPPRESS
    )
    groups = {}
    for group in GROUPS:
        known = set(sub.choices)
        group.register(sub)
        groups[group.TITLE] = [name for name in sub.choices if name not in known]
    parser.description = f"{DESCRIPTION}\n\n{_command_listing(sub.choices, groups)}"
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
        print(
            f"error: unexpected {type(err).__name__}: {err} (a bug in asr: rerun with -v for the traceback "
            "and report it)",
            file=sys.stderr,
        )
        return 3
