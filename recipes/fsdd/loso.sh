#!/usr/bin/env bash
# FSDD leave-one-speaker-out: for each speaker, train on the other speakers and test on every
# clip of the held-out one; then print the per-speaker table and the WER pooled over all of them.
# Usage: recipes/fsdd/loso.sh --src ../shared/data/fsdd [--exp exp/fsdd_loso] [--config FILE] [--python EXE]
set -euo pipefail
recipe=$(cd "$(dirname "$0")" && pwd)
src=""; exp="exp/fsdd_loso"; config="$recipe/conf.toml"; python="${PYTHON:-python3}"
speakers="george jackson nicolas theo yweweler"
while [ $# -gt 0 ]; do
  case "$1" in
    --src) src=$2; shift 2 ;;
    --exp) exp=$2; shift 2 ;;
    --config) config=$2; shift 2 ;;
    --python) python=$2; shift 2 ;;
    --speakers) speakers=$2; shift 2 ;;
    -h|--help) sed -n '2,4p' "$0"; exit 0 ;;
    *) echo "unknown option: $1" >&2; exit 2 ;;
  esac
done
[ -n "$src" ] || { echo "give --src DIR (a copy of FSDD)" >&2; exit 2; }
for speaker in $speakers; do
  echo "== held-out speaker: $speaker" >&2
  "$python" -m asr prepare fsdd --src "$src" --out "$exp/$speaker/data" --holdout-speaker "$speaker"
  "$python" -m asr train --config "$config" --train "$exp/$speaker/data/train.jsonl" \
    --dev "$exp/$speaker/data/dev.jsonl" --exp "$exp/$speaker"
  "$python" -m asr evaluate --model "$exp/$speaker" --manifest "$exp/$speaker/data/test.jsonl" \
    --out "$exp/$speaker/eval_unseen"
done
"$python" -m asr summarize $(for s in $speakers; do echo "$exp/$s/eval_unseen"; done) | tee "$exp/RESULTS.md"
