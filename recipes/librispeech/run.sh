#!/usr/bin/env bash
# LibriSpeech: train on every train-* subset present (train.jsonl), select on dev-clean, test on test-clean.
# Usage: recipes/librispeech/run.sh [--src DIR] [--stage N] [--stop-stage N] [--exp DIR] [--config FILE]
#   SUBSETS="dev-clean test-clean train-clean-100 train-clean-360 train-other-500" recipes/librispeech/run.sh
#   picks the subsets stage 0 downloads (default: dev-clean test-clean train-clean-100);
#   MIRROR=https://us.openslr.org/resources/12 fetches them from another OpenSLR mirror.
# The config defaults to conf_gpu.toml when nvidia-smi sees a GPU, conf_cpu.toml otherwise.
CORPUS=librispeech
DEV_SPLIT=dev-clean
TEST_SPLIT=test-clean
SUBSETS=${SUBSETS:-"dev-clean test-clean train-clean-100"}
DOWNLOAD_ARGS="$(for subset in $SUBSETS; do printf -- '--subset %s ' "$subset"; done)${MIRROR:+--mirror $MIRROR}"
if nvidia-smi -L >/dev/null 2>&1; then DEFAULT_CONFIG=conf_gpu.toml; else DEFAULT_CONFIG=conf_cpu.toml; fi
source "$(dirname "$0")/../stages.sh"
