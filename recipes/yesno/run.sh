#!/usr/bin/env bash
# yesno (OpenSLR SLR1): train on the first 31 files, test on the other 29, like Kaldi's egs/yesno.
# Usage: recipes/yesno/run.sh [--src ../shared/data/yesno] [--stage N] [--stop-stage N] [--exp DIR]
# There is no dev set: model selection uses the training files themselves, never the test files.
CORPUS=yesno
DEV_SPLIT=train
source "$(dirname "$0")/../stages.sh"
