#!/usr/bin/env bash
# Self-training on a new speaker's own unlabelled clips, after loso.sh. For each held-out speaker S:
# split S's clips by file index (below --split-index, 25: adaptation audio, used without its
# transcripts; the rest: test),
# transcribe the adaptation clips with the fold's model (beam search over the ten-word lexicon), and
# continue training the fold's model on its training set plus those transcripts, for --epochs
# epochs; --rounds N repeats this with each round's model transcribing again. The fold's model,
# every round's model and (--control) the fold's model trained the same epochs without the
# transcripts are evaluated on the test half, greedy and with beam search; EXP/SELF_TRAIN.md sums up.
# Usage: recipes/fsdd/self_train.sh --exp exp/fsdd_loso [--speakers "george ..."] [--rounds 1]
#          [--epochs 15] [--split-index 25] [--control] [--python EXE]
set -euo pipefail
exp="exp/fsdd_loso"; python="${PYTHON:-python3}"; speakers="george jackson nicolas theo yweweler"
rounds=1; epochs=15; split_index=25; control=0
while [ $# -gt 0 ]; do
  case "$1" in
    --exp) exp=$2; shift 2 ;;
    --speakers) speakers=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --epochs) epochs=$2; shift 2 ;;
    --split-index) split_index=$2; shift 2 ;;
    --control) control=1; shift ;;
    --python) python=$2; shift 2 ;;
    -h|--help) sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown option: $1" >&2; exit 2 ;;
  esac
done
asr() { "$python" -m asr "$@"; }

# The manifest's clips whose file index (the id's last field) is below / at least $split_index.
split_by_index() {  # manifest below.jsonl atleast.jsonl
  "$python" - "$@" "$split_index" <<'PY'
import json, sys
rows = [json.loads(line) for line in open(sys.argv[1], encoding="utf-8")]
index = lambda row: int(row["id"].rsplit("_", 1)[1])
split = int(sys.argv[4])
for path, keep in ((sys.argv[2], lambda i: i < split), (sys.argv[3], lambda i: i >= split)):
    with open(path, "w", encoding="utf-8") as out:
        out.writelines(json.dumps(row) + "\n" for row in rows if keep(index(row)))
PY
}

# The audio manifest with each clip's text replaced by the model's transcript from hyp.jsonl.
transcribed_manifest() {  # audio.jsonl hyp.jsonl out.jsonl
  "$python" - "$@" <<'PY'
import json, sys
audio = {row["id"]: row for row in map(json.loads, open(sys.argv[1], encoding="utf-8"))}
with open(sys.argv[3], "w", encoding="utf-8") as out:
    for hypothesis in map(json.loads, open(sys.argv[2], encoding="utf-8")):
        out.write(json.dumps({**audio[hypothesis["id"]], "text": hypothesis["text"]}) + "\n")
PY
}

# Continue training a copy of experiment FROM in TO on TRAIN until epoch UNTIL.
continue_training() {  # from to train until
  mkdir -p "$2"
  cp -r "$1/last.pt" "$1/config.toml" "$1/history.json" "$1/checkpoints" "$2/"
  asr train --config "$1/config.toml" --train "$3" --dev "$fold/data/dev.jsonl" --exp "$2" --resume --epochs "$4"
}

evaluate_both() {  # model out-prefix
  asr evaluate --model "$1" --manifest "$work/test_half.jsonl" --out "$2_greedy" --decoder greedy
  asr evaluate --model "$1" --manifest "$work/test_half.jsonl" --out "$2_beam" "${lexicon[@]}"
}

for speaker in $speakers; do
  fold="$exp/$speaker"; work="$fold/self_train"
  [ -f "$fold/last.pt" ] || { echo "$fold/last.pt: no trained fold here (run loso.sh first)" >&2; exit 2; }
  echo "== self-training on $speaker's unlabelled clips" >&2
  mkdir -p "$work"
  lexicon=(--lm "$fold/lm/words.arpa" --lexicon "$fold/lm/lexicon.txt" --lm-weight 1 --word-score 0)
  split_by_index "$fold/data/test.jsonl" "$work/adapt_audio.jsonl" "$work/test_half.jsonl"
  trained=$("$python" -c 'import json,sys; print(len(json.load(open(sys.argv[1]))))' "$fold/history.json")
  evaluate_both "$fold/model.pt" "$work/eval_base"
  previous="$fold"; model="$fold/model.pt"
  for round in $(seq 1 "$rounds"); do
    asr evaluate --model "$model" --manifest "$work/adapt_audio.jsonl" --out "$work/round$round/transcripts" "${lexicon[@]}"
    transcribed_manifest "$work/adapt_audio.jsonl" "$work/round$round/transcripts/hyp.jsonl" "$work/round$round/adapt.jsonl"
    cat "$fold/data/train_all.jsonl" "$work/round$round/adapt.jsonl" > "$work/round$round/train.jsonl"
    until=$((trained + round * epochs))
    continue_training "$previous" "$work/round$round/exp" "$work/round$round/train.jsonl" "$until"
    previous="$work/round$round/exp"; model=$(printf '%s/checkpoints/epoch-%04d.pt' "$previous" "$until")
    evaluate_both "$model" "$work/eval_round$round"
  done
  if [ "$control" = 1 ]; then
    until=$((trained + rounds * epochs))
    continue_training "$fold" "$work/control" "$fold/data/train_all.jsonl" "$until"
    evaluate_both "$(printf '%s/checkpoints/epoch-%04d.pt' "$work/control" "$until")" "$work/eval_control"
  fi
done
{
  for decoder in greedy beam; do
    for run in base $(seq -f 'round%g' 1 "$rounds") $([ "$control" = 1 ] && echo control); do
      echo; echo "$run, $decoder:"; echo
      asr summarize --pool $(for s in $speakers; do echo "$exp/$s/self_train/eval_${run}_$decoder"; done)
    done
  done
} | tee "$exp/SELF_TRAIN.md"
