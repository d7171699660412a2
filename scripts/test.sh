#!/usr/bin/env bash
# Sets everything up and runs the whole test suite: the Release build's tests, the parser and
# engine tests again under AddressSanitizer + UndefinedBehaviorSanitizer, a short libFuzzer run
# of every fuzz target, and the layering check. Exits non-zero on any failure.
#   STRATA_SKIP_SANITIZE=1  skip the sanitizer build (quicker local runs)
#   STRATA_SKIP_FUZZ=1      skip the fuzzers
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
stage() { echo; echo "=== $1 ($(( $(date +%s) - start ))s)"; }

stage "dependencies"
bash scripts/install-deps.sh

if [ ! -d ../shared/models ] && [ -z "${STRATA_SHARED:-}" ]; then
  echo "error: test data missing: ../shared/models not found beside the checkout (set STRATA_SHARED)" >&2
  exit 1
fi

stage "layering"
bash scripts/check-layers.sh

stage "build (Release)"
bash scripts/build.sh

stage "tests (Release)"
ctest --test-dir build --output-on-failure -j2 --timeout 900 | tee build/ctest.log
passed=$(sed -n 's/.* tests passed, 0 tests failed out of \([0-9]*\).*/\1/p' build/ctest.log | tail -1)
passed=${passed:-0}

if [ -z "${STRATA_SKIP_SANITIZE:-}" ]; then
  stage "build (ASan + UBSan)"
  # -O1 -g1 and no CUDA (the Release build already compiled it): the sanitized build is only
  # for these tests, and CI has two cores.
  cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g1" \
    -DSTRATA_SANITIZE=ON -DSTRATA_BENCH=OFF -DSTRATA_CUDA=OFF >/dev/null
  SAN_TESTS="formats_test corrupt_test tokenizer_test golden_test ops_test quant_test engine_test sampler_test"
  ninja -C build-asan -j"$(nproc)" $SAN_TESTS
  stage "tests (ASan + UBSan)"
  export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
  for t in $SAN_TESTS; do
    echo "--- $t (sanitized)"
    "build-asan/tests/$t" --gtest_brief=1 | tee build-asan/$t.log
    n=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' build-asan/$t.log | tail -1)
    passed=$((passed + ${n:-0}))
  done
fi

if [ -z "${STRATA_SKIP_FUZZ:-}" ]; then
  stage "fuzzers (libFuzzer, short run)"
  CC=clang CXX=clang++ cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSTRATA_FUZZ=ON \
    -DSTRATA_TESTS=OFF -DSTRATA_BENCH=OFF -DSTRATA_CUDA=OFF >/dev/null
  ninja -C build-fuzz -j"$(nproc)" fuzzers
  bash scripts/fuzz.sh build-fuzz "${STRATA_FUZZ_SECONDS:-20}"
  passed=$((passed + $(ls build-fuzz/fuzz/*_fuzz | wc -l)))
fi

stage "done"
echo "all tests passed in $(( $(date +%s) - start ))s (Release suite, sanitized suite, fuzz runs)"
echo "$passed passed, 0 failed"
