#!/usr/bin/env bash
# Create .venv and install slmtune with its dev tools and the BFCL data (idempotent; about a minute when fresh).
# torch==2.13.0 resolves to the CPU build on CPU machines; GPU users install their CUDA build of torch 2.13.0 first.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[dev]'
# bfcl-eval ships the BFCL data files; its own dependencies are enormous and slmtune never imports it.
.venv/bin/python -m pip install -q --disable-pip-version-check --no-deps bfcl-eval==2026.3.23
