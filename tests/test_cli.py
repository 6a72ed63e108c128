"""``python -m slmtune``: user errors are one line (``slmtune: error: ...``, exit 2), their traceback comes back with
--debug or SLMTUNE_DEBUG=1, and unexpected errors keep theirs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from slmtune.cli import describe, is_user_error

ROOT = Path(__file__).resolve().parent.parent


def slmtune(tmp_path, *args, env=None, code=None):
    """Run ``python -m slmtune ARGS`` (or ``python -c CODE ARGS``) in ``tmp_path``; (exit status, stderr)."""
    environ = {k: v for k, v in os.environ.items() if k != "SLMTUNE_DEBUG"}
    environ.update(PYTHONPATH=str(ROOT), **(env or {}))
    command = [sys.executable, "-c", code, *args] if code else [sys.executable, "-m", "slmtune", *args]
    proc = subprocess.run(command, cwd=tmp_path, env=environ, capture_output=True, text=True, timeout=300)
    return proc.returncode, proc.stderr


@pytest.mark.parametrize(("args", "message"), [
    (["train", "+recipe=nope"], "slmtune: error: +recipe=nope: unknown recipe 'nope'; choose one of "),
    (["trian"], "slmtune: error: unknown stage 'trian'"),
    (["train", "+recipe=tiny", "train.max_steps=abc"],
     "slmtune: error: Error merging override train.max_steps=abc: train.max_steps: Value 'abc'"),
    (["train", "+recipe=tiny", "train.lora.top_layers=0"], "slmtune: error: train.lora.top_layers: 0 must be >= 1"),
    (["export", "+recipe=tiny", "export.verify=."],
     "slmtune: error: ExportVerificationError: .: export verification failed:"),
])
def test_user_errors_print_one_line_and_no_traceback(tmp_path, args, message):
    status, err = slmtune(tmp_path, *args)
    assert status == 2, err
    assert err.startswith(message), err
    assert "Traceback" not in err and "HYDRA_FULL_ERROR" not in err and "Error executing job" not in err
    if args[0] != "export":
        assert err.count("\n") == 1, err


@pytest.mark.parametrize("debug", [{"env": {"SLMTUNE_DEBUG": "1"}}, {"args": ["--debug"]}])
def test_the_debug_flag_shows_the_traceback(tmp_path, debug):
    status, err = slmtune(tmp_path, "calibrate", "+recipe=tiny", "calibrate.predictions=[missing.jsonl]",
                          *debug.get("args", []), env=debug.get("env"))
    assert status == 1
    assert "Traceback" in err and "FileNotFoundError: calibrate.predictions: no such file(s) ['missing.jsonl']" in err


def test_an_unexpected_error_keeps_its_traceback(tmp_path):
    code = ("import sys; from slmtune.stages import pipeline\n"
            "def broken(cfg, stage):\n    raise KeyError('internal')\n"
            "pipeline.run_stage = broken\n"
            "from slmtune.cli import main; main(sys.argv[1:])\n")
    status, err = slmtune(tmp_path, "train", "+recipe=tiny", code=code)
    assert status == 1 and "Traceback" in err and "KeyError: 'internal'" in err and "slmtune: error" not in err


def test_which_errors_are_the_users():
    from slmtune.config import compose
    from slmtune.data.registry import ToolSchemaError

    with pytest.raises(ValueError) as checked:
        compose(["+recipe=tiny", "train.lora.top_layers=0"])  # slmtune's own input check
    with pytest.raises(ValueError) as library:
        int("x")  # not raised by slmtune: a bug somewhere, keep the traceback
    assert is_user_error(checked.value) and not is_user_error(library.value)
    assert is_user_error(FileNotFoundError("no such file")) and not is_user_error(KeyError("k"))
    named = ToolSchemaError("catalog.json: tool 'x': parameters: not an object")
    assert is_user_error(named) and describe(named).startswith("ToolSchemaError: catalog.json")
