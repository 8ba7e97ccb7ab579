#!/usr/bin/env bash
# FSDD leave-one-speaker-out: for each speaker, train on the other speakers (plus synthetic voices) and
# test on every clip of the held-out one, greedy and with beam search over the ten-word lexicon, and
# with beam search after adapting the model to the held-out voice (asr evaluate --adapt); then
# write the per-speaker tables and the WER pooled over all of them to EXP/RESULTS.md.
# Usage: recipes/fsdd/loso.sh --src ../shared/data/fsdd [--exp exp/fsdd_loso] [--config FILE]
#          [--speakers "george jackson ..."] [--synth-per-digit N | --synth-speakers N]
#          [--synth-engines LIST] [--seed N] [--python EXE]
#   --synth-per-digit N   also train on each digit word read by N synthetic voices drawn anew for
#                         every reading (default 100, 0 for the real speakers alone)
#   --synth-speakers N    instead: N synthetic speakers (voice and pitch) that each read all ten digits
#   --synth-engines LIST  asr synth --engines (default espeak-ng,flite,festival; also: mbrola)
#   --seed N              training seed of every fold (asr train --seed; default: the config's). The
#                         synthetic clips stay the same, so a run per seed measures training's spread
set -euo pipefail
recipe=$(cd "$(dirname "$0")" && pwd)
src=""; exp="exp/fsdd_loso"; config="$recipe/conf.toml"; python="${PYTHON:-python3}"
speakers="george jackson nicolas theo yweweler"
synth_per_digit=100; synth_speakers=0; synth_engines="espeak-ng,flite,festival"; seed=()
while [ $# -gt 0 ]; do
  case "$1" in
    --src) src=$2; shift 2 ;;
    --exp) exp=$2; shift 2 ;;
    --config) config=$2; shift 2 ;;
    --python) python=$2; shift 2 ;;
    --speakers) speakers=$2; shift 2 ;;
    --synth-per-digit) synth_per_digit=$2; shift 2 ;;
    --synth-speakers) synth_speakers=$2; shift 2 ;;
    --synth-engines) synth_engines=$2; shift 2 ;;
    --seed) seed=(--seed "$2"); shift 2 ;;
    -h|--help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown option: $1" >&2; exit 2 ;;
  esac
done
[ -n "$src" ] || { echo "give --src DIR (a copy of FSDD)" >&2; exit 2; }
asr() { "$python" -m asr "$@"; }

synth_manifest=""
if [ "$synth_speakers" -gt 0 ]; then
  voices=(--speakers "$synth_speakers"); what="$synth_speakers synthetic speakers reading each digit word"
else
  voices=(--per-text "$synth_per_digit"); what="$synth_per_digit synthetic readings of each digit word"
fi
if [ "$synth_speakers" -gt 0 ] || [ "$synth_per_digit" -gt 0 ]; then
  echo "== $what -> $exp/synth" >&2
  mkdir -p "$exp/synth"
  printf '%s\n' zero one two three four five six seven eight nine > "$exp/synth/digits.txt"
  synth_manifest="$exp/synth/manifest.jsonl"
  asr synth --text "$exp/synth/digits.txt" --out "$exp/synth" "${voices[@]}" --engines "$synth_engines" \
    --manifest "$synth_manifest"
fi

for speaker in $speakers; do
  echo "== held-out speaker: $speaker" >&2
  data="$exp/$speaker/data"
  asr prepare fsdd --src "$src" --out "$data" --holdout-speaker "$speaker"
  cat "$data/train.jsonl" $synth_manifest > "$data/train_all.jsonl"
  asr train --config "$config" --train "$data/train_all.jsonl" --dev "$data/dev.jsonl" --exp "$exp/$speaker" \
    "${seed[@]}"
  asr lm build --text "$data/train.jsonl" --order 2 --out "$exp/$speaker/lm/words.arpa" \
    --lexicon "$exp/$speaker/lm/lexicon.txt" --vocab-from "$data/train.jsonl"
  asr evaluate --model "$exp/$speaker" --manifest "$data/test.jsonl" --out "$exp/$speaker/eval_unseen" \
    --decoder greedy
  beam=(--lm "$exp/$speaker/lm/words.arpa" --lexicon "$exp/$speaker/lm/lexicon.txt" --lm-weight 1 --word-score 0)
  asr evaluate --model "$exp/$speaker" --manifest "$data/test.jsonl" --out "$exp/$speaker/eval_unseen_beam" "${beam[@]}"
  asr evaluate --model "$exp/$speaker" --manifest "$data/test.jsonl" --out "$exp/$speaker/eval_unseen_adapted" \
    "${beam[@]}" --adapt
done
{
  echo "Greedy:"; echo
  asr summarize --pool $(for s in $speakers; do echo "$exp/$s/eval_unseen"; done)
  echo; echo "Beam 50, ten-word lexicon, bigram LM (weight 1):"; echo
  asr summarize --pool $(for s in $speakers; do echo "$exp/$s/eval_unseen_beam"; done)
  echo; echo "The same, adapted to the held-out speaker (asr evaluate --adapt: two passes, no references read):"; echo
  asr summarize --pool $(for s in $speakers; do echo "$exp/$s/eval_unseen_adapted"; done)
} | tee "$exp/RESULTS.md"
