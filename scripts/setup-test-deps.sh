#!/usr/bin/env bash
# Installs the system packages the test suite needs (Debian), only when missing.
set -euo pipefail
need=()
# Add packages here as tests need them (e.g. chromium, postgresql).
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
fi
