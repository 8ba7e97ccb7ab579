"""Write the general-English LM that ships in the pocketsphinx wheel as a bigram ARPA file.

CMU's ``en-us.lm.bin`` (a trigram model: 72,547 words, 2,051,547 bigrams, 1,669,625 trigrams;
BSD-style licence, see the pocketsphinx package) is read with pocketsphinx's ``NGramModel`` and
written with its own ARPA writer. In pocketsphinx 5.1.1 that writer crashes (a segmentation fault)
while it collects the trigrams, after it has printed the unigrams and the bigrams; so it runs in a
child process, and this script keeps what the file holds by then: every unigram with its backoff
weight, and the bigrams up to the writer's last flushed buffer (2,051,511 of 2,051,547; the 36
missing ones are the last of its order). That is a bigram model, whose backoff weights are then
recomputed (:mod:`asr.decode.arpa`) so each distribution sums to one again. A sample of the kept values is
checked against ``NGramModel.prob``, which reads the model itself.

pocketsphinx is needed only to run this script (``pip install pocketsphinx``); asr never imports it.

    python recipes/english/pocketsphinx_lm.py --out exp/english/lm/pocketsphinx.arpa
"""

from __future__ import annotations

import argparse
import math
import random
import subprocess
import sys
import tempfile
from pathlib import Path

from asr.decode.arpa import BackoffLM, _recompute_backoffs, write_arpa

LOG_BASE = 1.0001  # pocketsphinx's integer log base: prob() returns log_1.0001 values
TOLERANCE = 1e-3  # |log10| difference allowed against prob() (the writer prints 4 decimals)
EXPORT = """
import os, sys, pocketsphinx
from pocketsphinx import Config, LogMath, NGramModel
config, logmath = Config(), LogMath({base})  # kept referenced: the model uses them while it writes
model = NGramModel(config, logmath, os.path.join(pocketsphinx.get_model_path(), "en-us", "en-us.lm.bin"))
model.write(sys.argv[1], NGramModel.str_to_type("arpa"))
"""
CHECK = """
import json, os, sys, pocketsphinx
from pocketsphinx import Config, LogMath, NGramModel
config, logmath = Config(), LogMath({base})
model = NGramModel(config, logmath, os.path.join(pocketsphinx.get_model_path(), "en-us", "en-us.lm.bin"))
print(json.dumps([model.prob(list(reversed(words))) for words in json.load(sys.stdin)]))
"""


def salvage(path: Path) -> BackoffLM:
    """Unigrams (with backoffs) and complete bigram lines of the writer's partial file."""
    model = BackoffLM([{}, {}], [{}, {}])
    order = 0
    with path.open(encoding="utf-8", errors="replace") as lines:
        for line in lines:
            if not line.endswith("\n"):
                break  # the last, cut line
            line = line.rstrip("\n")
            if line.startswith("\\") and line.endswith("-grams:"):
                order = int(line[1 : -len("-grams:")])
                if order > 2:
                    break
                continue
            fields = line.split("\t")
            if order in (1, 2) and len(fields) >= order + 1:
                ngram = tuple(fields[1 : order + 1])
                model.probs[order - 1][ngram] = float(fields[0])
                if order == 1 and len(fields) == 3 and float(fields[2]) != 0.0:
                    model.backoffs[0][ngram] = float(fields[2])
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, type=Path, help="ARPA file to write")
    parser.add_argument("--check", type=int, default=2000, help="unigrams and bigrams checked against prob()")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw.arpa"
        subprocess.run([sys.executable, "-c", EXPORT.format(base=LOG_BASE), str(raw)], capture_output=True)
        if not raw.is_file():
            raise SystemExit("pocketsphinx wrote nothing (is it installed? pip install pocketsphinx)")
        model = salvage(raw)
    unigrams, bigrams = len(model.probs[0]), len(model.probs[1])
    if unigrams < 70000 or bigrams < 2000000:
        raise SystemExit(f"only {unigrams} unigrams and {bigrams} bigrams came out of pocketsphinx's writer")
    rng = random.Random(0)
    sample = rng.sample(sorted(model.probs[0]), args.check // 2) + rng.sample(sorted(model.probs[1]), args.check // 2)
    sample = [g for g in sample if g[-1] != "<s>"]
    import json

    checked = subprocess.run(
        [sys.executable, "-c", CHECK.format(base=LOG_BASE)],
        input=json.dumps(sample),
        capture_output=True,
        text=True,
        check=True,
    )
    expected = [p * math.log10(LOG_BASE) for p in json.loads(checked.stdout)]
    worst = max(abs(model.probs[len(g) - 1][g] - e) for g, e in zip(sample, expected))
    if worst > TOLERANCE:
        raise SystemExit(f"the salvaged values differ from prob() by up to {worst:.4f}: not written")
    _recompute_backoffs(model)
    write_arpa(model, args.out)
    print(
        f"{args.out}: {unigrams} unigrams, {bigrams} bigrams; {len(sample)} checked against "
        f"pocketsphinx's prob(), largest difference {worst:.1e}"
    )


if __name__ == "__main__":
    main()
