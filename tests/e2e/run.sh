#!/usr/bin/env bash
# End-to-end tests of `strata serve` with the official OpenAI Node client (registered in ctest).
#   run.sh STRATA_BINARY MODEL [TEST_FILE...]
# Installs the pinned client from package-lock.json (npm ci) and runs node's test runner.
set -euo pipefail
cd "$(dirname "$0")"
export STRATA_BINARY="$1" STRATA_MODEL="$2"
shift 2
files=("$@")
[ ${#files[@]} -eq 0 ] && files=(openai_client.test.mjs)
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "error: node and npm are needed for the e2e tests (scripts/install-deps.sh installs them)" >&2
  exit 1
fi
# Tests that use the openai client need it installed (again only when the lock file changed).
if grep -q "from 'openai'" "${files[@]}" && ! cmp -s package-lock.json node_modules/.strata-installed-lock.json 2>/dev/null; then
  npm ci --no-audit --no-fund --loglevel=error
  cp package-lock.json node_modules/.strata-installed-lock.json
fi
exec node --test --test-concurrency=1 "${files[@]}"
