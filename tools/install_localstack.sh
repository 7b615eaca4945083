#!/usr/bin/env bash
# Installs LocalStack's S3 (`localstack-core`, no Docker) into .localstack/venv for the upload
# contract's reference tier (tests/test_upload_contract.py; docs: testing). It imports only on
# Python >= 3.13: LOCALSTACK_BASE_PYTHON, else pyenv's 3.13, else `python3.13` on PATH.
# About 500 MB and a minute or two; every version is pinned by the constraints file.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
VENV="$ROOT/.localstack/venv"
CONSTRAINTS="$ROOT/tools/localstack-constraints.txt"
STAMP="$VENV/.installed"
if [ -f "$STAMP" ] && [ "$STAMP" -nt "$CONSTRAINTS" ]; then
  exit 0
fi
# The first interpreter that runs and is 3.13+ (pyenv's shims exist for versions it has not enabled).
runs_313() { [ -n "$1" ] && "$1" -c 'import sys; sys.exit(sys.version_info < (3, 13))' 2>/dev/null; }
BASE=""
for candidate in "${LOCALSTACK_BASE_PYTHON:-}" \
  "$(command -v pyenv >/dev/null && echo "$(pyenv root)/versions/$(pyenv versions --bare | grep -E '^3\.13(\.[0-9]+)?$' | tail -1)/bin/python3")" \
  "$(command -v python3.13 || true)"; do
  if runs_313 "$candidate"; then BASE="$candidate"; break; fi
done
if [ -z "$BASE" ]; then
  echo "install_localstack.sh: no Python 3.13 found (set LOCALSTACK_BASE_PYTHON)" >&2
  exit 1
fi
rm -rf "$VENV"
"$BASE" -m venv "$VENV"
"$VENV/bin/pip" install --quiet --constraint "$CONSTRAINTS" 'localstack-core[runtime]' 'cbor2<6' service_identity
touch "$STAMP"
