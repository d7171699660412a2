#!/usr/bin/env bash
# Sets everything up, builds, and generates text. MODEL= picks the model (a .gguf file or a
# Hugging Face folder); by default the stories260K test model beside the checkout.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh
MODEL=${MODEL:-../shared/models/stories260K-gguf/stories260K.gguf}
if [ ! -e "$MODEL" ]; then
  echo "error: no model at '$MODEL'. Run again with MODEL=/path/to/model.gguf (or a Hugging Face folder)." >&2
  exit 2
fi
PROMPT=${PROMPT:-Once upon a time}
exec ./build/src/strata run -m "$MODEL" -p "$PROMPT" -n "${N:-128}"
