#!/usr/bin/env bash
# LJ Speech: one reader; whole chapters held out (see README.md). The word LM learns from every
# normalized sentence of metadata.csv except the dev and test ones (data/ljspeech/lm_text.txt).
# Usage: recipes/ljspeech/run.sh [--src ../shared/data/ljspeech] [--stage N] [--stop-stage N] [--exp DIR]
CORPUS=ljspeech
LM_ORDER=4
LM_TEXT_NAME=lm_text.txt
source "$(dirname "$0")/../stages.sh"
