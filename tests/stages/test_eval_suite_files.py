"""One predictions file per suite; the eval stage's per-batch records live outside its output (issue 21)."""

import pytest

from slmtune.rundir import BatchLog, RunDir
from slmtune.stages.eval import suite_file_name, suite_file_names


def test_a_user_suite_path_cannot_take_a_builtin_suites_file(tmp_path):
    user = str(tmp_path / "bfcl_simple_python")
    names = suite_file_names(["bfcl:simple_python", user, "synthetic", str(tmp_path / "synthetic.jsonl")])
    assert names["bfcl:simple_python"] == "bfcl_simple_python" and names["synthetic"] == "synthetic"
    assert len(set(names.values())) == 4
    assert suite_file_name("bfcl_simple_python") == "user_bfcl_simple_python"
    with pytest.raises(ValueError, match="would both write"):
        suite_file_names(["a b", "a_b"])


def test_resume_records_are_per_input_hash_and_dropped(tmp_path):
    run = RunDir(tmp_path)
    old = run.resume_dir("eval", "aaaa")
    BatchLog(old / "x.batches.partial.jsonl").append({"batch": 0, "keys": ["r0"], "rows": [{}]})
    new = run.resume_dir("eval", "bbbb")
    assert not old.exists() and new.is_dir()  # records made for other inputs are never reused
    assert BatchLog(new / "x.batches.partial.jsonl").done() == {}
    run.drop_resume("eval")
    assert not (tmp_path / ".eval.resume").exists()
