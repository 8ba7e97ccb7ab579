#!/usr/bin/env bash
# FSDD: the corpus' own split (indices 0-4 test, 5-9 dev, 10-49 train).
# Usage: recipes/fsdd/run.sh [--src ../shared/data/fsdd] [--stage N] [--stop-stage N] [--exp DIR]
# Leave-one-speaker-out: recipes/fsdd/loso.sh
CORPUS=fsdd
source "$(dirname "$0")/../stages.sh"
