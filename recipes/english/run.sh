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
# Environment variables:
#   amounts of synthesized speech, in sentences (0 leaves a part out): SYNTH_LJSPEECH, SYNTH_AN4 and
#   SYNTH_PHRASES (read by SYNTH_ENGINES, default espeak-ng,flite,festival), SYNTH_LJSPEECH_MORE (espeak-ng
#   and flite), SYNTH_PIPER and SYNTH_PIPER_AN4 (piper's neural voice), SYNTH_KOKORO, SYNTH_KOKORO_AN4 and
#   SYNTH_KOKORO_MORE (Kokoro-82M's blended voices, US and British; the last a second sample of LJ Speech
#   sentences, drawn with another seed; both neural engines: pip install 'asr[tts]'), SYNTH_PICO_RHVOICE and
#   SYNTH_PICO_RHVOICE_AN4 (SVOX Pico's British and American voices and RHVoice's four LGPL English ones;
#   Debian's libttspico-utils, rhvoice and rhvoice-english, from the non-free component) and
#   SYNTH_PICO_RHVOICE_MORE (the same engines on a second sample of LJ Speech sentences, another seed);
#   REPEAT_REAL: list the real LJ Speech and AN4 training clips this many times (default 1);
#   INIT: a model to fine-tune from (stage 3 passes it to asr train --init);
#   GENERAL_LM=1: stage 4 mixes in CMU's general-English LM from the pocketsphinx wheel
#   (pip install pocketsphinx; only this stage needs it), keeping LM_WORDS words, pruned at LM_PRUNE;
#   BEAM_SIZE and BEAM_SIZE_TOKEN: the beam search stage 4 tunes and stores as the model's default
#   (default 200 hypotheses, 8 tokens per frame: README.md, "A wider beam").
# The shipped model is two runs of this script (README.md, "Model and training").
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
SYNTH_PIPER=${SYNTH_PIPER:-0}
SYNTH_PIPER_AN4=${SYNTH_PIPER_AN4:-0}
SYNTH_KOKORO=${SYNTH_KOKORO:-0}
SYNTH_KOKORO_AN4=${SYNTH_KOKORO_AN4:-0}
SYNTH_KOKORO_MORE=${SYNTH_KOKORO_MORE:-0}
SYNTH_PICO_RHVOICE=${SYNTH_PICO_RHVOICE:-0}
SYNTH_PICO_RHVOICE_AN4=${SYNTH_PICO_RHVOICE_AN4:-0}
SYNTH_PICO_RHVOICE_MORE=${SYNTH_PICO_RHVOICE_MORE:-0}
SYNTH_ENGINES=${SYNTH_ENGINES:-espeak-ng,flite,festival}
REPEAT_REAL=${REPEAT_REAL:-1}
INIT=${INIT:-}
GENERAL_LM=${GENERAL_LM:-0}
LM_WORDS=${LM_WORDS:-20000}
LM_PRUNE=${LM_PRUNE:-1e-7}
LM_ORDER=${LM_ORDER:-2}
BEAM_SIZE=${BEAM_SIZE:-200}
BEAM_SIZE_TOKEN=${BEAM_SIZE_TOKEN:-8}
TEST_SETS="ljspeech an4 fsdd vctk"  # vctk when --src has it (an unseen speaker, test only)

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
  engines="espeak-ng flite festival"
  [ $((SYNTH_PICO_RHVOICE + SYNTH_PICO_RHVOICE_AN4 + SYNTH_PICO_RHVOICE_MORE)) -eq 0 ] || engines="$engines pico rhvoice"
  # shellcheck disable=SC2086  # $engines is a list of names without spaces
  missing=$("$python" -c 'import sys
from asr.data.synth import missing_engines
print(" ".join(sorted(set(" ".join(missing_engines(sys.argv[1:]).values()).split()))))' $engines)
  if [ -n "$missing" ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get > /dev/null; then
      log "0: apt-get install $missing"
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing > /dev/null || {
        echo "apt-get could not install: $missing (libttspico-utils and rhvoice are in Debian's non-free component)" >&2; exit 2; }
    else
      echo "missing speech synthesizers; install them with: sudo apt-get install $missing" >&2; exit 2
    fi
  fi
fi

if run_stage 1; then
  [ -n "$src" ] || { echo "give --src DIR (a folder with ljspeech/, an4/ and fsdd/)" >&2; exit 2; }
  log "1: prepare $src -> $data"
  asr prepare english --src "$src" --out "$data" --repeat-real "$REPEAT_REAL"
fi

if run_stage 2; then
  log "2: synthesize speech (cached in $data/synth: a rerun makes only what is missing)"
  # manifest name, text file, sentences, engines, seed: festival is ~20x slower than espeak-ng and flite,
  # so the larger sample of LJ Speech sentences is read by those two only.
  parts=""
  while read -r name text count engines seed; do
    [ "$count" -gt 0 ] || continue
    asr synth --text "$data/synth_$text.txt" --max-texts "$count" --engines "$engines" --seed "$seed" \
      --out "$data/synth" --manifest "$data/synth_$name.jsonl" < /dev/null
    parts="$parts $data/synth_$name.jsonl"
  done <<PARTS
ljspeech ljspeech $SYNTH_LJSPEECH $SYNTH_ENGINES 0
ljspeech_more ljspeech $SYNTH_LJSPEECH_MORE espeak-ng,flite 1
an4 an4 $SYNTH_AN4 $SYNTH_ENGINES 0
phrases phrases $SYNTH_PHRASES $SYNTH_ENGINES 0
piper_ljspeech ljspeech $SYNTH_PIPER piper 2
piper_an4 an4 $SYNTH_PIPER_AN4 piper 3
kokoro_ljspeech ljspeech $SYNTH_KOKORO kokoro 4
kokoro_an4 an4 $SYNTH_KOKORO_AN4 kokoro 5
kokoro_ljspeech_more ljspeech $SYNTH_KOKORO_MORE kokoro 6
pico_rhvoice_ljspeech ljspeech $SYNTH_PICO_RHVOICE pico,rhvoice 7
pico_rhvoice_an4 an4 $SYNTH_PICO_RHVOICE_AN4 pico,rhvoice 8
pico_rhvoice_ljspeech_more ljspeech $SYNTH_PICO_RHVOICE_MORE pico,rhvoice 9
PARTS
  # shellcheck disable=SC2086  # $parts is a list of paths without spaces
  cat "$data/train.jsonl" $parts > "$data/train_all.jsonl"
fi

if run_stage 3; then
  log "3: train -> $exp"
  init=()
  [ -z "$INIT" ] || init=(--init "$INIT")
  asr train --config "$config" --train "$data/train_all.jsonl" --dev "$data/dev.jsonl" --exp "$exp" "${init[@]}"
fi

if run_stage 4; then
  log "4: word LM (order $LM_ORDER) and lexicon from $data/lm_text.txt without dev's sentences, tuned on $data/dev.jsonl"
  asr lm build --text "$data/lm_text.txt" --order "$LM_ORDER" --out "$lm_dir/words.arpa" \
    --lexicon "$lm_dir/lexicon.txt" --vocab-from "$data/train_all.jsonl" --exclude "$data/dev.jsonl"
  lm="$lm_dir/words.arpa"
  lexicon="$lm_dir/lexicon.txt"
  if [ "$GENERAL_LM" = 1 ]; then
    log "4: mix in CMU's general-English LM (weight tuned on dev perplexity), $LM_WORDS words, pruned at $LM_PRUNE"
    "$python" "$RECIPE_DIR/pocketsphinx_lm.py" --out "$lm_dir/pocketsphinx.arpa"
    asr lm mix "$lm_dir/words.arpa" "$lm_dir/pocketsphinx.arpa" --tune-on "$data/dev.jsonl" --out "$lm_dir/mixed.arpa"
    asr lm restrict "$lm_dir/mixed.arpa" --model "$exp" --max-words "$LM_WORDS" --out "$lm_dir/mixed_words.arpa"
    asr lm prune "$lm_dir/mixed_words.arpa" --threshold "$LM_PRUNE" --out "$lm_dir/general.arpa"
    asr lm lexicon "$lm_dir/general.arpa" --model "$exp" --out "$lm_dir/general_lexicon.txt"
    lm="$lm_dir/general.arpa"
    lexicon="$lm_dir/general_lexicon.txt"
  fi
  asr tune-lm --model "$exp" --manifest "$data/dev.jsonl" --lm "$lm" --lexicon "$lexicon" --out "$lm_dir/tuning.json" \
    --beam-size "$BEAM_SIZE" --beam-size-token "$BEAM_SIZE_TOKEN"
fi

evaluate_all() {  # model, folder prefix
  for test_set in $TEST_SETS; do
    [ -f "$data/test_$test_set.jsonl" ] || continue
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
