#!/usr/bin/env bash
# Installs the Debian packages the test suite needs, only when they are missing:
# Chromium for the browser end-to-end tests, PostgreSQL for the feedback server's Postgres tests,
# PyTorch (Debian's python3-torch) for the reference tests.
set -euo pipefail
need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium)
ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || need+=(postgresql)
/usr/bin/python3 -c "import torch" >/dev/null 2>&1 || need+=(python3-torch libopenblas0-pthread)
if [ ${#need[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
