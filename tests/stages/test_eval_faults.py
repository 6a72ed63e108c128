"""Faults during eval and while writing stage outputs (issue 21): a SIGKILLed eval resumes without decoding its
finished batches again; a write that fails (disk full) leaves nothing that looks complete."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from slmtune.rundir import RunDir, atomic_write_text, read_jsonl, write_jsonl


def _disk_full(monkeypatch) -> None:
    """Every atomic write's temporary file is /dev/full: the write fails with ENOSPC, as on a full disk."""
    real = tempfile.mkstemp

    def mkstemp(prefix="", dir=None, **kw):
        fd, path = real(prefix=prefix, dir=dir, **kw)
        os.close(fd)
        return os.open("/dev/full", os.O_WRONLY), path

    monkeypatch.setattr(tempfile, "mkstemp", mkstemp)


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_a_full_disk_leaves_nothing_that_looks_complete(tmp_path, monkeypatch):
    run = RunDir(tmp_path)
    (tmp_path / "old.txt").write_text("previous content\n")
    with pytest.MonkeyPatch.context() as patch:
        _disk_full(patch)
        with pytest.raises(OSError) as err:
            atomic_write_text(tmp_path / "old.txt", "new content\n")
        assert err.value.errno == errno.ENOSPC
    assert (tmp_path / "old.txt").read_text() == "previous content\n"  # the old file is untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old.txt"]  # no temporary file left behind

    with pytest.raises(OSError):
        with run.stage_output("eval", "hash-1") as out:
            write_jsonl(out / "predictions-a.jsonl", [{"id": "r0"}])  # written before the disk filled up
            _disk_full(monkeypatch)
            write_jsonl(out / "report.json", [{"id": "r0"}])
    monkeypatch.undo()
    assert not run.stage_dir("eval").exists() and not run.partial_dir("eval").exists()
    # run.json could not be rewritten either (the disk is full): it still says "running", never "completed"
    assert run.stage_record("eval")["status"] == "running"
    assert not run.is_current("eval", "hash-1")


def _env() -> dict[str, str]:
    return {**os.environ, "CUDA_VISIBLE_DEVICES": "", "WANDB_MODE": "disabled", "PYTHONUNBUFFERED": "1"}


@pytest.mark.slow
def test_a_sigkilled_eval_resumes_without_decoding_finished_batches(tmp_path):
    command = [sys.executable, "-m", "slmtune", "eval", "+recipe=tiny", f"run.output_dir={tmp_path}",
               "eval.adapter=null", "eval.suites=[bfcl:simple_python]", "eval.limit=12", "eval.batch_size=2",
               "tracking.mode=disabled"]
    run_dir = tmp_path / "tiny" / "main"
    logs = run_dir / ".eval.resume"
    with (tmp_path / "first.log").open("w") as log:
        first = subprocess.Popen(command, env=_env(), stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 600
        try:
            while sum(len(p.read_text().splitlines()) for p in logs.rglob("*.batches.partial.jsonl")) < 2:
                assert first.poll() is None, "eval ended before two batches:\n" + \
                    (tmp_path / "first.log").read_text()[-3000:]
                assert time.monotonic() < deadline, "no two batches within 10 minutes"
                time.sleep(0.05)
        finally:
            first.send_signal(signal.SIGKILL)
            first.wait()
    assert not (run_dir / "eval").exists()  # nothing was published
    [batch_log] = list(logs.rglob("*.batches.partial.jsonl"))
    finished = [json.loads(line) for line in batch_log.read_text().splitlines() if line.endswith("}")]
    assert 2 <= len(finished) < 6
    second = subprocess.run(command, env=_env(), capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    rows = {r["id"]: r for r in read_jsonl(run_dir / "eval" / "predictions-bfcl_simple_python.jsonl")}
    assert len(rows) == 12
    for entry in finished:  # the very rows of the killed run (a re-decoding would measure other latencies)
        for kept in entry["rows"]:
            skip = ("variant", "input_tokens")
            assert {k: v for k, v in rows[kept["id"]].items() if k not in skip} == \
                {k: v for k, v in kept.items() if k not in skip}
    assert not logs.exists()  # the per-batch records go once the stage is complete
