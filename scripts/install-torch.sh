#!/bin/sh
# Installs PyTorch from Debian for the reference scripts (scripts/reference/), only if missing.
# Debian's python3-torch lives under /usr/bin/python3, not whatever python3 comes first on PATH.
set -e
if /usr/bin/python3 -c "import torch" 2>/dev/null; then
  exit 0
fi
SUDO=""
if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
$SUDO apt-get update
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y python3-torch libopenblas0-pthread
/usr/bin/python3 -c "import torch; print('torch', torch.__version__)"
