#!/usr/bin/env bash
# Runs every fuzz target for a few seconds from a seed corpus made of the shared test files.
# usage: scripts/fuzz.sh BUILD_DIR SECONDS
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build-fuzz}
secs=${2:-20}
shared=${STRATA_SHARED:-../shared}
corpus=$build/corpus
mkdir -p "$corpus"/{gguf,safetensors,tokenizer,json}
# Seeds: the heads of real files (the parsers' interesting part), and small whole files.
head -c 16384 "$shared/models/stories260K-gguf/stories260K.gguf" > "$corpus/gguf/stories_head"
head -c 65536 "$shared/models/vocab-gguf/ggml-vocab-gpt-2.gguf" > "$corpus/gguf/gpt2_vocab_head"
head -c 4096 "$shared/models/tiny/opt/model.safetensors" > "$corpus/safetensors/opt_head"
cp "$shared/models/vocab-gguf/ggml-vocab-llama-spm.gguf.inp" "$corpus/tokenizer/inp"
printf '{"model":"x","messages":[{"role":"user","content":"hi"}],"max_tokens":4,"stream":true}' > "$corpus/json/chat"
for f in "$build"/fuzz/*_fuzz; do
  name=$(basename "$f" _fuzz)
  dir="$corpus/$name"
  mkdir -p "$dir"
  echo "--- fuzzing $name for ${secs}s"
  mkdir -p "$build/artifacts"
  set +e
  "$f" -max_total_time="$secs" -max_len=70000 -rss_limit_mb=4096 -timeout=30 -print_final_stats=1 \
    -artifact_prefix="$build/artifacts/$name-" "$dir" > "$build/$name.fuzz.log" 2>&1
  rc=$?
  set -e
  grep -E "^stat::number_of_executed_runs|^stat::peak_rss_mb" "$build/$name.fuzz.log" || true
  if [ $rc -ne 0 ]; then
    echo "fuzzer $name failed (exit $rc):"; tail -40 "$build/$name.fuzz.log"; exit 1
  fi
done
