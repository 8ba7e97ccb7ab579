#!/usr/bin/env bash
# Characters or BPE pieces for the English model? The same model, data subset and 4-epoch schedule with
# each tokenizer; compare the dev WER each run reports (exp/english_compare_{char,bpe}/train.log).
# Run after stages 1-2 of run.sh. Usage: recipes/english/compare_tokenizers.sh [--data DIR] [--python EXE]
set -euo pipefail
RECIPE_DIR=$(cd "$(dirname "$0")" && pwd)
data=data/english
python="${PYTHON:-python3}"
while [ $# -gt 0 ]; do
  case "$1" in
    --data) data=$2; shift 2 ;;
    --python) python=$2; shift 2 ;;
    *) sed -n '2,4p' "$0"; exit 2 ;;
  esac
done
# the real training speech, the LJ Speech sentences read by all three engines, and the phrases (2.5 h)
cat "$data/train.jsonl" "$data/synth_ljspeech.jsonl" "$data/synth_phrases.jsonl" > "$data/train_compare.jsonl"
for tokenizer in char bpe; do
  "$python" -m asr train --config "$RECIPE_DIR/conf_compare_$tokenizer.toml" --train "$data/train_compare.jsonl" \
    --dev "$data/dev.jsonl" --exp "exp/english_compare_$tokenizer"
done
grep -H "best epoch" exp/english_compare_{char,bpe}/train.log
