#!/usr/bin/env bash
# Installs the pinned schemathesis (PyPI) into a virtualenv under the
# project's cache, once, and prints the path of its `st` command. The
# contract test (tests/contract.rs) runs it; `cargo run -p xtask -- test`
# runs this first and hands the path over as ORDERSHOP_SCHEMATHESIS.
#
#   ORDERSHOP_CACHE   cache root (default ~/.cache/ordershop)
set -euo pipefail

VERSION=4.32.5
CACHE=$(realpath -m "${ORDERSHOP_CACHE:-$HOME/.cache/ordershop}")
VENV=$CACHE/schemathesis-$VERSION
ST=$VENV/bin/st

if ! "$ST" --version 2>/dev/null | grep -q "$VERSION"; then
  command -v python3 >/dev/null || { echo "python3 is required to install schemathesis (apt-get install -y python3 python3-venv)" >&2; exit 1; }
  echo "installing schemathesis $VERSION into $VENV" >&2
  rm -rf "$VENV"
  python3 -m venv "$VENV" >&2 || { echo "python3 -m venv failed (apt-get install -y python3-venv)" >&2; exit 1; }
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$VERSION" >&2
fi
echo "$ST"
