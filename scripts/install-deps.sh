#!/usr/bin/env bash
# Installs everything strata needs to build and test on a fresh Debian 12 machine (run as root).
# Idempotent: packages already present are skipped by apt.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
PKGS=(
  build-essential cmake ninja-build pkg-config git ca-certificates curl
  clang clang-format libclang-rt-14-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  nlohmann-json3-dev libcpp-httplib-dev libcli11-dev libfmt-dev libspdlog-dev
  libpcre2-dev liburing-dev libglpk-dev libopenblas-pthread-dev
  tmux python3 libedit-dev
)
# Node.js is only needed for the server's end-to-end tests (the openai npm client); a machine that
# already has node+npm (e.g. from NodeSource) keeps them, since Debian's npm conflicts with those.
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then PKGS+=(nodejs npm); fi
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "[deps] installing: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  echo "[deps] all Debian packages present"
fi
