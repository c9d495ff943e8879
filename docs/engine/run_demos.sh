#!/usr/bin/env bash
# Short CPU demo runs of every method (64 px, 200 faces, ~5 min each, one thread, niced).
# Usage: bash docs/engine/run_demos.sh [method ...]   (from the project root; outputs in runs/demo/)
set -u
T="--set threads=1 --max-minutes 5 --no-progress"
run() { local name=$1; shift; echo "=== $name $(date +%T)"; nice -n 10 facegan train "$@" --out runs/demo/$name $T; }
WANT=" $* "
want() { [ "$WANT" = "  " ] || [[ "$WANT" == *" $1 "* ]]; }
want cyclegan && run cyclegan cyclegan --set train.batch=1 --set train.steps=400
want cyclegan-unet && run cyclegan-unet cyclegan-unet --set train.batch=1 --set train.steps=400
want cyclegan-progressive && run cyclegan-progressive cyclegan-progressive --set train.batch=1 --set train.steps=600
want unit && run unit unit --set train.batch=1 --set model.ngf=16 --set model.ndf=16 --set train.steps=400
want pix2pix && run pix2pix pix2pix --set train.batch=4 --set train.steps=600
want pix2pixhd && run pix2pixhd pix2pixhd --set train.batch=2 --set train.steps=500
want faceswap && run faceswap faceswap --set train.batch=8 --set train.steps=1000
want twingan && run twingan twingan --set train.batch=2 --set train.steps=400
