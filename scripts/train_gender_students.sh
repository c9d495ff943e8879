#!/usr/bin/env bash
# The distilled pix2pix students (second method family for swap-gender), end to end:
# pairs from the shipped translator at strength 2, then one U-Net per direction.
#   bash scripts/train_gender_students.sh        (about 40 minutes on a 2-core CPU)
# Evaluate: facegan evaluate ../shared/datasets/utkface-200 --ops swap-gender@runs/gender-student
set -euo pipefail
python scripts/distill_pairs.py --teacher shipped --strength 2 -o cache/distill
for d in male-to-female female-to-male; do
  facegan train "configs/gender-student-$d.yaml" --no-progress
done
