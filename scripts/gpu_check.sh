#!/usr/bin/env bash
# GPU check of slmtune (issue 19): one prepared script meant to fit in 8 minutes (a 480 s budget) on one CUDA GPU, with
# tiny models only (the `tiny` recipe: a 2-layer random Gemma 3 with the embedded Gemma tokenizer; no hub or network
# access). Needs slmtune's dependencies installed (a CUDA build of torch, then `pip install -e '.[dev]'`).
#
# STATUS: THIS SCRIPT HAS NOT YET RUN ON A GPU. It was written and its plumbing tested on CPU only (a --cpu dry run
# passed every step in 464 s on 2 shared cores). Whoever first runs it on a GPU records the results file in
# BENCHMARKS.md and updates this line.
#
# Steps (each timed, pass/fail, log kept):
#   versions        python, torch/CUDA, transformers, peft, trl, accelerate, bitsandbytes, xgrammar; device name
#   gpu_pytest      the `gpu`-marked tests (tests/test_gpu.py: decoder and bitmask on CUDA, cuda:LOCAL_RANK,
#                   bf16 LoRA and nf4 QLoRA steps on the GPU)
#   data            the tiny recipe's data stage
#   train_lora_bf16 LoRA, bf16, a few optimizer steps (train/summary.json must name a CUDA device)
#   eval_constrained XGrammar-constrained decoding of the synthetic suite (eval/report.json must name a CUDA device)
#   calibrate       router calibration on those answers
#   export          merge + export, verified by the export itself: fresh-process reload, logit check, re-decode
#   redecode_export a new process loads export/merged/ alone onto the GPU and decodes constrained calls again
#   train_qlora_nf4 QLoRA (bitsandbytes nf4, double quantisation) on its own run: data + a few steps
#
# Usage: scripts/gpu_check.sh [--cpu] [--out RESULTS.json] [--work DIR]
#   --cpu   dry run on the CPU (CUDA hidden): tests the script's plumbing; chosen automatically when torch sees no
#           CUDA device. A dry run never counts as a GPU run (the results file says "ran_on_gpu": false).
#   --out   results file (default: $OUT/gpu_check.json when $OUT is set, else outputs/gpu_check/gpu_check.json)
#   --work  working directory for the runs and step logs (default: a new temporary directory)
# Environment: PYTHON (default: python), PRECISION (default: bf16; e.g. fp32 for an AVX2-only CPU dry run),
#   BUDGET_S (default 480 on a GPU, 1800 in a dry run: steps that would start after this many seconds are recorded
#   as skipped).
# Exit status: 0 when every step passed, 1 otherwise.
set -u -o pipefail

cd "$(dirname "$0")/.."
REPO=$(pwd)
PYTHON=${PYTHON:-python}
PRECISION=${PRECISION:-bf16}
MODE=auto
RESULTS=""
WORK=""
while [ $# -gt 0 ]; do
  case "$1" in
    --cpu) MODE=cpu; shift ;;
    --out) RESULTS=$2; shift 2 ;;
    --work) WORK=$2; shift 2 ;;
    -h|--help) sed -n '2,/^set -u/p' "$0" | sed '$d'; exit 0 ;;
    *) echo "gpu_check: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
if [ -z "$RESULTS" ]; then
  if [ -n "${OUT:-}" ]; then RESULTS=$OUT/gpu_check.json; else RESULTS=$REPO/outputs/gpu_check/gpu_check.json; fi
fi
[ -n "$WORK" ] || WORK=$(mktemp -d -t slmtune-gpu-check-XXXXXX)
mkdir -p "$WORK/logs" "$(dirname "$RESULTS")"
STEPS=$WORK/steps.jsonl
: > "$STEPS"

if [ "$MODE" = auto ]; then
  if "$PYTHON" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
    MODE=gpu
  else
    MODE=cpu
  fi
fi
if [ "$MODE" = cpu ]; then
  export CUDA_VISIBLE_DEVICES=""
  BUDGET_S=${BUDGET_S:-1800}  # a 2-core CPU took about 460 s for every step
else
  BUDGET_S=${BUDGET_S:-480}
fi
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 WANDB_MODE=disabled HF_HUB_OFFLINE=1
NOTICE="gpu_check: NOTE this script has not yet been run on a GPU by its authors (see its header); mode=$MODE"
echo "$NOTICE"
echo "gpu_check: work directory $WORK, results $RESULTS"

STARTED=$(date +%s)
COMMON=("+recipe=tiny" "run.output_dir=$WORK/runs" "tracking.mode=disabled" "train.max_steps=4"
        "train.save_steps=4" "train.eval_steps=4" "train.precision=$PRECISION" "eval.precision=$PRECISION"
        "eval.suites=[synthetic]" "eval.limit=8" "export.overwrite=true")
LORA_RUN=$WORK/runs/tiny/main

# step NAME TIMEOUT_S COMMAND...: run one step with its own time limit, log it, append its record to $STEPS.
step() {
  local name=$1 limit=$2; shift 2
  local log=$WORK/logs/$name.log elapsed rc start end
  elapsed=$(( $(date +%s) - STARTED ))
  if [ "$elapsed" -ge "$BUDGET_S" ]; then
    echo "gpu_check: SKIP $name (the ${BUDGET_S} s budget is spent)"
    record "$name" skipped 0 0 "$log" "$*"
    return
  fi
  echo "gpu_check: ---- $name"
  start=$(date +%s%N)
  # through bash -c so that the exported helper functions below can be steps too
  timeout --kill-after=10 "$limit" bash -c '"$@"' _ "$@" > "$log" 2>&1
  rc=$?
  end=$(date +%s%N)
  if [ "$rc" -eq 0 ]; then echo "gpu_check: PASS $name"; else echo "gpu_check: FAIL $name (exit $rc)"; tail -n 15 "$log"; fi
  record "$name" "$([ "$rc" -eq 0 ] && echo passed || echo failed)" "$rc" "$(( (end - start) / 1000000 ))" "$log" "$*"
}

record() {
  "$PYTHON" - "$STEPS" "$@" <<'PY'
import json, sys
steps, name, status, rc, millis, log, command = sys.argv[1:8]
try:
    with open(log, encoding="utf-8", errors="replace") as handle:
        tail = handle.read()[-2000:]
except OSError:
    tail = ""
with open(steps, "a", encoding="utf-8") as handle:
    handle.write(json.dumps({"name": name, "status": status, "exit_code": int(rc), "seconds": round(int(millis) / 1000, 1),
                             "command": command, "log": log, "log_tail": tail}) + "\n")
PY
}

# expect_device FILE: the stage summary/report FILE names a CUDA device (GPU mode) or the CPU (dry run).
expect_device() {
  "$PYTHON" - "$1" "$MODE" <<'PY'
import json, sys
path, mode = sys.argv[1:3]
device = json.load(open(path, encoding="utf-8"))["device"]
wanted = "cuda" if mode == "gpu" else "cpu"
print(f"{path}: device {device}")
sys.exit(0 if device.startswith(wanted) else f"{path}: ran on {device}, expected {wanted}")
PY
}

versions() {
  "$PYTHON" - "$WORK/versions.json" "$MODE" <<'PY'
import json, platform, sys
from importlib.metadata import PackageNotFoundError, version

import torch

out, mode = sys.argv[1:3]
info = {"python": platform.python_version(), "torch": torch.__version__, "cuda": torch.version.cuda,
        "cuda_available": torch.cuda.is_available(), "platform": platform.platform()}
for package in ("transformers", "peft", "trl", "accelerate", "bitsandbytes", "xgrammar", "datasets"):
    try:
        info[package] = version(package)
    except PackageNotFoundError:
        info[package] = None
if torch.cuda.is_available():
    info["device_name"] = torch.cuda.get_device_name(0)
    info["device_capability"] = ".".join(map(str, torch.cuda.get_device_capability(0)))
    info["bf16_supported"] = torch.cuda.is_bf16_supported()
    info["gpu_memory_gib"] = round(torch.cuda.get_device_properties(0).total_memory / 2**30, 1)
else:
    info["device_name"] = f"cpu ({platform.processor() or platform.machine()})"
json.dump(info, open(out, "w", encoding="utf-8"), indent=1)
print(json.dumps(info, indent=1))
missing = [p for p in ("transformers", "peft", "trl", "accelerate", "bitsandbytes", "xgrammar") if info[p] is None]
sys.exit(f"missing packages: {missing}" if missing else 0 if mode == "cpu" or info["cuda_available"] else "no CUDA")
PY
}

redecode_export() {
  "$PYTHON" - "$LORA_RUN/export/merged" <<'PY'
import sys

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from slmtune.eval.decoding import Decoder, DecodeRequest
from slmtune.models.families import FAMILIES
from slmtune.models.loading import default_device

merged = sys.argv[1]
device = default_device()
dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
model = AutoModelForCausalLM.from_pretrained(merged, dtype=dtype).to(device).eval()
tokenizer = AutoTokenizer.from_pretrained(merged)
family = FAMILIES["gemma3"]
dialect = family.dialect()
tool = {"name": "get_time", "description": "Local time in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}
prompt = family.render_prompt([{"role": "user", "content": "What time is it in Oslo?"}], [tool], dialect)
decoder = Decoder(model, tokenizer, stop_strings=[family.end_of_turn], max_new_tokens=48, closing_reserve=16,
                  call_trigger=dialect.call_trigger)
grammar = dialect.grammar([tool], allow_text=False, max_calls=1)
outputs = decoder.generate([DecodeRequest(prompt, grammar), DecodeRequest(prompt, None)], batch_size=2)
parsed = dialect.parse(outputs[0].text)
print(f"model on {model.device} ({dtype}); constrained: {outputs[0].text!r}; free: {outputs[1].text!r}")
sys.exit(f"constrained answer does not parse: {parsed.error}" if parsed.error or not parsed.calls else 0)
PY
}

export PYTHON MODE WORK LORA_RUN
export -f expect_device versions redecode_export
step versions 120 versions
step gpu_pytest 240 "$PYTHON" -m pytest -m gpu tests/test_gpu.py -q -p no:cacheprovider -rs
step data 180 "$PYTHON" -m slmtune data "${COMMON[@]}"
step train_lora_bf16 180 "$PYTHON" -m slmtune train "${COMMON[@]}"
step train_lora_device 30 expect_device "$LORA_RUN/train/summary.json"
step eval_constrained 240 "$PYTHON" -m slmtune eval "${COMMON[@]}"
step eval_device 30 expect_device "$LORA_RUN/eval/report.json"
step calibrate 120 "$PYTHON" -m slmtune calibrate "${COMMON[@]}"
step export 300 "$PYTHON" -m slmtune export "${COMMON[@]}"
step redecode_export 120 redecode_export
step data_qlora 180 "$PYTHON" -m slmtune data "${COMMON[@]}" run.name=qlora
step train_qlora_nf4 240 "$PYTHON" -m slmtune train "${COMMON[@]}" run.name=qlora train.method=qlora
step train_qlora_device 30 expect_device "$WORK/runs/tiny/qlora/train/summary.json"

"$PYTHON" - "$STEPS" "$WORK/versions.json" "$RESULTS" "$MODE" "$STARTED" "$NOTICE" <<'PY'
import json, os, sys, time

steps_path, versions_path, results, mode, started, notice = sys.argv[1:7]
steps = [json.loads(line) for line in open(steps_path, encoding="utf-8")]
try:
    versions = json.load(open(versions_path, encoding="utf-8"))
except (OSError, ValueError):
    versions = {}
report = {
    "script": "scripts/gpu_check.sh", "mode": mode, "ran_on_gpu": mode == "gpu",
    "note": notice + (" -- a CPU dry run: it tests the script, not the GPU" if mode != "gpu" else ""),
    "device_name": versions.get("device_name"), "versions": versions,
    "passed": all(s["status"] == "passed" for s in steps),
    "steps": steps, "total_seconds": round(time.time() - int(started), 1),
}
tmp = results + ".tmp"
with open(tmp, "w", encoding="utf-8") as handle:
    json.dump(report, handle, indent=1)
os.replace(tmp, results)
for s in steps:
    print(f"gpu_check: {s['status']:>7}  {s['seconds']:7.1f} s  {s['name']}")
print(f"gpu_check: {'ALL PASSED' if report['passed'] else 'SOME STEPS FAILED'} in {report['total_seconds']} s, "
      f"mode={mode}, device={report['device_name']}; results in {results}")
sys.exit(0 if report["passed"] else 1)
PY
rc=$?
echo "$NOTICE"
exit $rc
