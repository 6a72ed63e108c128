"""scripts/gpu_check.sh: its usage and its statement of whether it has run on a GPU (the full CPU dry run,
``scripts/gpu_check.sh --cpu``, takes minutes and is run by hand)."""

from __future__ import annotations

import subprocess

from slmtune.config import PACKAGE_ROOT

SCRIPT = PACKAGE_ROOT / "scripts" / "gpu_check.sh"


def test_the_script_parses_and_its_help_says_whether_it_has_run_on_a_gpu():
    subprocess.run(["bash", "-n", str(SCRIPT)], check=True)
    shown = subprocess.run(["bash", str(SCRIPT), "--help"], capture_output=True, text=True, check=True).stdout
    assert "STATUS:" in shown and "GPU" in shown.split("STATUS:")[1].splitlines()[0]
    assert "--cpu" in shown and "--out" in shown


def test_an_unknown_argument_stops_it_before_any_step():
    result = subprocess.run(["bash", str(SCRIPT), "--fast"], capture_output=True, text=True)
    assert result.returncode == 2 and "unknown argument --fast" in result.stderr
