# Shared by recipes/<corpus>/run.sh: option parsing and the standard stages.
# A recipe sets CORPUS (and optionally TEST_SPLIT, DEV_SPLIT, PREPARE_ARGS, DOWNLOAD_ARGS, DEFAULT_CONFIG,
# LM_TEXT_NAME, LM_ORDER, TRAIN_SEEDS with FIT_WER), then sources this file.
# TRAIN_SEEDS with FIT_WER: seeds tried in turn until a run's best dev WER is at most FIT_WER (a
# fraction); for recipes whose dev set is the training set, it restarts a run that failed to fit it.
#
#   --stage N / --stop-stage N   run stages N..M only (0 download, 1 prepare, 2 train, 3 language model,
#                                4 evaluate: greedy, beam+lexicon, beam+lexicon+LM; 5 transcribe an example)
#   --src DIR                    an existing copy of the corpus (skips the download)
#   --url URL                    download the corpus archive from URL instead of its public address
#   --data DIR                   where manifests go (default data/$CORPUS)
#   --exp DIR                    experiment folder (default exp/$CORPUS); the model ends at DIR/model.pt
#   --config FILE                training config (default: conf.toml beside run.sh, or the recipe's DEFAULT_CONFIG)
#   --python EXE                 interpreter with asr installed (default: python3)
set -euo pipefail

RECIPE_DIR=$(cd "$(dirname "${BASH_SOURCE[1]}")" && pwd)
stage=0
stop_stage=5
src=""
url=""
data="data/$CORPUS"
exp="exp/$CORPUS"
config="$RECIPE_DIR/${DEFAULT_CONFIG:-conf.toml}"
python="${PYTHON:-python3}"
TEST_SPLIT=${TEST_SPLIT:-test}
DEV_SPLIT=${DEV_SPLIT:-dev}
PREPARE_ARGS=${PREPARE_ARGS:-}
LM_ORDER=${LM_ORDER:-3}
DOWNLOAD_ARGS=${DOWNLOAD_ARGS:-}

usage() { sed -n '2,12p' "$RECIPE_DIR/../stages.sh" | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }
while [ $# -gt 0 ]; do
  case "$1" in
    --stage) stage=$2; shift 2 ;;
    --stop-stage|--stop_stage) stop_stage=$2; shift 2 ;;
    --src) src=$2; shift 2 ;;
    --url) url=$2; shift 2 ;;
    --data) data=$2; shift 2 ;;
    --exp) exp=$2; shift 2 ;;
    --config) config=$2; shift 2 ;;
    --python) python=$2; shift 2 ;;
    -h|--help) usage 0 ;;
    *) echo "unknown option: $1" >&2; usage 2 ;;
  esac
done

asr() { "$python" -m asr "$@"; }
log() { echo "== $CORPUS stage $*" >&2; }
run_stage() { [ "$stage" -le "$1" ] && [ "$stop_stage" -ge "$1" ]; }

if [ -z "$src" ]; then
  src_file="$data/.src"
  if run_stage 0; then
    log "0: download"
    mkdir -p "$data"
    # shellcheck disable=SC2086
    asr download "$CORPUS" --out "downloads/$CORPUS" ${url:+--url "$url"} $DOWNLOAD_ARGS > "$src_file.tmp" || { rm -f "$src_file.tmp"; exit 1; }
    mv "$src_file.tmp" "$src_file"
  fi
  [ -f "$src_file" ] && src=$(cat "$src_file")
fi

if run_stage 1; then
  [ -n "$src" ] || { echo "no corpus: give --src DIR or run stage 0 (download)" >&2; exit 2; }
  log "1: prepare $src -> $data"
  # shellcheck disable=SC2086
  asr prepare "$CORPUS" --src "$src" --out "$data" $PREPARE_ARGS
fi

fits() {  # exit 0 when the best dev WER in $exp/history.json is at most $1
  "$python" -c 'import json, sys
sys.exit(min(e["dev_wer"] for e in json.load(open(sys.argv[1]))) > float(sys.argv[2]))' "$exp/history.json" "$1"
}

if run_stage 2; then
  if [ -z "${TRAIN_SEEDS:-}" ]; then
    log "2: train -> $exp"
    asr train --config "$config" --train "$data/train.jsonl" --dev "$data/$DEV_SPLIT.jsonl" --exp "$exp"
  else
    for seed in $TRAIN_SEEDS; do
      log "2: train -> $exp (seed $seed)"
      asr train --config "$config" --train "$data/train.jsonl" --dev "$data/$DEV_SPLIT.jsonl" --exp "$exp" --seed "$seed"
      fits "$FIT_WER" && break
      echo "WARNING: seed $seed: best $DEV_SPLIT WER above $FIT_WER, the model did not fit (the next seed, if any, trains again)" >&2
    done
  fi
fi

lm_dir="$exp/lm"
lm_text="$data/${LM_TEXT_NAME:-train.jsonl}"
# A character model decodes with a lexicon and a word LM; a BPE model lexicon-free with an LM over
# its pieces (flashlight's lexicon decoder mishandles one-piece words: see asr/decode.py).
decoding() {
  if "$python" -c 'import sys; from asr.model.checkpoint import load_model
sys.exit(" " not in load_model(sys.argv[1]).tokenizer.vocabulary)' "$exp"; then
    echo "--lm $lm_dir/words.arpa --lexicon $lm_dir/lexicon.txt"
  else
    echo "--lm $lm_dir/pieces.arpa"
  fi
}

if run_stage 3; then
  if [ "$(decoding)" = "--lm $lm_dir/pieces.arpa" ]; then
    log "3: LM over the model's BPE pieces (order $((LM_ORDER + 2))) from $lm_text -> $lm_dir"
    asr lm build --text "$lm_text" --order $((LM_ORDER + 2)) --units tokens --model "$exp" --out "$lm_dir/pieces.arpa"
  else
    log "3: word LM (order $LM_ORDER) and lexicon from $lm_text -> $lm_dir"
    asr lm build --text "$lm_text" --order "$LM_ORDER" --out "$lm_dir/words.arpa" \
      --lexicon "$lm_dir/lexicon.txt" --vocab-from "$data/train.jsonl"
  fi
  if [ "$DEV_SPLIT" != train ]; then
    log "3: tune the LM weight (and word score) on $data/$DEV_SPLIT.jsonl"
    # shellcheck disable=SC2046
    asr tune-lm --model "$exp" --manifest "$data/$DEV_SPLIT.jsonl" $(decoding) --out "$lm_dir/tuning.json"
  fi
fi

if run_stage 4; then
  log "4: evaluate $data/$TEST_SPLIT.jsonl: greedy, beam with the lexicon alone, beam with the LM"
  eval_dir="$exp/eval_${TEST_SPLIT}"
  asr evaluate --model "$exp" --manifest "$data/$TEST_SPLIT.jsonl" --out "${eval_dir}_greedy" --decoder greedy
  evaluations=("${eval_dir}_greedy")
  if [ -f "$lm_dir/lexicon.txt" ] && [ "$(decoding)" != "--lm $lm_dir/pieces.arpa" ]; then
    asr evaluate --model "$exp" --manifest "$data/$TEST_SPLIT.jsonl" --out "${eval_dir}_lexicon" \
      --lm "$lm_dir/words.arpa" --lexicon "$lm_dir/lexicon.txt" --lm-weight 0 --word-score 0
    evaluations+=("${eval_dir}_lexicon")
  fi
  # shellcheck disable=SC2046
  asr evaluate --model "$exp" --manifest "$data/$TEST_SPLIT.jsonl" --out "${eval_dir}_beam" $(decoding)
  asr summarize "${evaluations[@]}" "${eval_dir}_beam"
fi

if run_stage 5; then
  example=$("$python" -c 'import json,sys; print(json.loads(open(sys.argv[1]).readline())["audio_filepath"])' "$data/$TEST_SPLIT.jsonl")
  log "5: transcribe $example"
  # shellcheck disable=SC2046
  asr transcribe "$example" --model "$exp" $(decoding)
fi
