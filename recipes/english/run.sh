#!/usr/bin/env bash
# The default English model that ships with asr: real LJ Speech, AN4 and FSDD speech plus synthesized voices.
# See README.md for the data, the splits and the results.
#
#   --src DIR          folder holding ljspeech/, an4/ and fsdd/ in their own layouts (e.g. ../shared/data)
#   --stage N / --stop-stage N   run stages N..M only:
#        0 speech synthesizers (installed with apt-get when run as root)   1 prepare manifests and text
#        2 synthesize speech   3 train   4 word LM, lexicon, tune on dev   5 evaluate each test set
#        6 export in half precision to --ship and evaluate the exported model
#   --data DIR         manifests and synthesized audio (default data/english)
#   --exp DIR          experiment folder (default exp/english)
#   --config FILE      training config (default conf.toml beside run.sh)
#   --ship DIR         where stage 6 writes the exported model (default asr/pretrained/english)
#   --python EXE       interpreter with asr installed (default: python3)
# Amounts of synthesized speech, in sentences (environment variables): SYNTH_LJSPEECH (all three engines),
# SYNTH_LJSPEECH_MORE (espeak-ng and flite), SYNTH_AN4, SYNTH_PHRASES.
set -euo pipefail

RECIPE_DIR=$(cd "$(dirname "$0")" && pwd)
stage=0
stop_stage=6
src=""
data=data/english
exp=exp/english
config="$RECIPE_DIR/conf.toml"
ship=asr/pretrained/english
python="${PYTHON:-python3}"
SYNTH_LJSPEECH=${SYNTH_LJSPEECH:-800}
SYNTH_LJSPEECH_MORE=${SYNTH_LJSPEECH_MORE:-2000}
SYNTH_AN4=${SYNTH_AN4:-1000}
SYNTH_PHRASES=${SYNTH_PHRASES:-1200}
LM_ORDER=${LM_ORDER:-2}
TEST_SETS="ljspeech an4 fsdd"

usage() { sed -n '2,/^set -euo/p' "$0" | grep '^#' | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }
while [ $# -gt 0 ]; do
  case "$1" in
    --stage) stage=$2; shift 2 ;;
    --stop-stage|--stop_stage) stop_stage=$2; shift 2 ;;
    --src) src=$2; shift 2 ;;
    --data) data=$2; shift 2 ;;
    --exp) exp=$2; shift 2 ;;
    --config) config=$2; shift 2 ;;
    --ship) ship=$2; shift 2 ;;
    --python) python=$2; shift 2 ;;
    -h|--help) usage 0 ;;
    *) echo "unknown option: $1" >&2; usage 2 ;;
  esac
done

asr() { "$python" -m asr "$@"; }
log() { echo "== english stage $*" >&2; }
run_stage() { [ "$stage" -le "$1" ] && [ "$stop_stage" -ge "$1" ]; }
lm_dir="$exp/lm"

if run_stage 0; then
  missing=$("$python" -c 'from asr.data.synth import ENGINE_PACKAGES, missing_engines
print(" ".join(sorted(set(" ".join(missing_engines(ENGINE_PACKAGES).values()).split()))))')
  if [ -n "$missing" ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get > /dev/null; then
      log "0: apt-get install $missing"
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing > /dev/null
    else
      echo "missing speech synthesizers; install them with: sudo apt-get install $missing" >&2; exit 2
    fi
  fi
fi

if run_stage 1; then
  [ -n "$src" ] || { echo "give --src DIR (a folder with ljspeech/, an4/ and fsdd/)" >&2; exit 2; }
  log "1: prepare $src -> $data"
  asr prepare english --src "$src" --out "$data"
fi

if run_stage 2; then
  log "2: synthesize speech (cached in $data/synth: a rerun makes only what is missing)"
  # manifest name, text file, sentences, engines, seed: festival is ~20x slower than espeak-ng and flite,
  # so it reads only the first sample of LJ Speech sentences.
  while read -r name text count engines seed; do
    asr synth --text "$data/synth_$text.txt" --max-texts "$count" --engines "$engines" --seed "$seed" \
      --out "$data/synth" --manifest "$data/synth_$name.jsonl" < /dev/null
  done <<PARTS
ljspeech ljspeech $SYNTH_LJSPEECH espeak-ng,flite,festival 0
ljspeech_more ljspeech $SYNTH_LJSPEECH_MORE espeak-ng,flite 1
an4 an4 $SYNTH_AN4 espeak-ng,flite,festival 0
phrases phrases $SYNTH_PHRASES espeak-ng,flite,festival 0
PARTS
  cat "$data/train.jsonl" "$data"/synth_{ljspeech,ljspeech_more,an4,phrases}.jsonl > "$data/train_all.jsonl"
fi

if run_stage 3; then
  log "3: train -> $exp"
  asr train --config "$config" --train "$data/train_all.jsonl" --dev "$data/dev.jsonl" --exp "$exp"
fi

if run_stage 4; then
  log "4: word LM (order $LM_ORDER) and lexicon from $data/lm_text.txt, tuned on $data/dev.jsonl"
  asr lm build --text "$data/lm_text.txt" --order "$LM_ORDER" --out "$lm_dir/words.arpa" \
    --lexicon "$lm_dir/lexicon.txt" --vocab-from "$data/train_all.jsonl"
  asr tune-lm --model "$exp" --manifest "$data/dev.jsonl" --lm "$lm_dir/words.arpa" \
    --lexicon "$lm_dir/lexicon.txt" --out "$lm_dir/tuning.json"
fi

evaluate_all() {  # model, folder prefix
  for test_set in $TEST_SETS; do
    asr evaluate --model "$1" --manifest "$data/test_$test_set.jsonl" --out "$2/${test_set}_greedy" --decoder greedy
    asr evaluate --model "$1" --manifest "$data/test_$test_set.jsonl" --out "$2/${test_set}_beam"
  done
  asr summarize "$2"/*_greedy "$2"/*_beam
}

if run_stage 5; then
  log "5: evaluate $TEST_SETS: greedy, and beam search with the lexicon and LM (settings tuned in stage 4)"
  evaluate_all "$exp" "$exp/eval"
fi

if run_stage 6; then
  log "6: export $exp (float16 weights) -> $ship, and evaluate the exported model"
  asr export --model "$exp" --out "$ship" --half
  evaluate_all "$ship" "$exp/eval_shipped"
fi
