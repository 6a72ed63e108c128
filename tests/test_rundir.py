"""Run directory: atomic stage outputs and the run.json record."""

import json

import pytest

from slmtune.rundir import RunDir, atomic_write_json, files_fingerprint, read_jsonl


def test_stage_output_is_renamed_only_on_success(tmp_path):
    run = RunDir(tmp_path)
    with run.stage_output("data", "h1") as out:
        (out / "train.jsonl").write_text("{}\n")
        assert not run.stage_dir("data").exists()
    assert (run.stage_dir("data") / "train.jsonl").is_file()
    assert run.is_current("data", "h1") and not run.is_current("data", "h2")
    assert len(run.completion_id("data")) == 32


def test_failed_stage_leaves_no_complete_looking_directory(tmp_path):
    run = RunDir(tmp_path)
    with pytest.raises(RuntimeError), run.stage_output("eval", "h") as out:
        (out / "report.json").write_text("{}")
        raise RuntimeError("boom")
    assert not run.stage_dir("eval").exists() and not run.partial_dir("eval").exists()
    assert run.stage_record("eval")["status"] == "failed" and "boom" in run.stage_record("eval")["error"]
    with pytest.raises(FileNotFoundError, match="has not completed"):
        run.completion_id("eval")


def test_keep_partial_survives_failure_for_resume(tmp_path):
    run = RunDir(tmp_path)
    with pytest.raises(KeyboardInterrupt), run.stage_output("train", "h", keep_partial=True) as out:
        (out / "checkpoint").write_text("x")
        raise KeyboardInterrupt
    assert (run.partial_dir("train") / "checkpoint").is_file()
    with run.stage_output("train", "h", keep_partial=True) as out:
        assert (out / "checkpoint").is_file()


def test_rerun_replaces_previous_output(tmp_path):
    run = RunDir(tmp_path)
    for content in ("old", "new"):
        with run.stage_output("export", content) as out:
            (out / "f").write_text(content)
    assert (run.stage_dir("export") / "f").read_text() == "new"


def test_read_jsonl_names_file_and_line(tmp_path):
    path = tmp_path / "x.jsonl"
    path.write_text('{"a": 1}\n{broken\n')
    with pytest.raises(ValueError, match=r"x.jsonl:2"):
        read_jsonl(path)


def test_atomic_write_json_roundtrip(tmp_path):
    atomic_write_json(tmp_path / "a.json", {"k": [1, 2]})
    assert json.loads((tmp_path / "a.json").read_text()) == {"k": [1, 2]}
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]


def test_read_jsonl_wants_objects(tmp_path):
    path = tmp_path / "x.jsonl"
    path.write_text('{"a": 1}\n\n[1, 2]\n')
    with pytest.raises(ValueError, match=r"x.jsonl:3: expected a JSON object, got list"):
        read_jsonl(path)


def test_a_stage_whose_files_went_missing_or_changed_is_not_complete(tmp_path):
    run = RunDir(tmp_path)
    with run.stage_output("data", "h") as out:
        (out / "train.jsonl").write_text("{}\n")
        (out / "sub").mkdir()
        (out / "sub" / "stats.json").write_text("{}")
    assert run.stage_record("data")["files"] == {"sub/stats.json": 2, "train.jsonl": 3}
    assert run.is_current("data", "h") and run.damaged_files("data") == []
    (run.stage_dir("data") / "train.jsonl").write_text("{}\n{}\n")  # changed
    (run.stage_dir("data") / "sub" / "stats.json").unlink()  # missing
    assert run.damaged_files("data") == ["sub/stats.json", "train.jsonl"]
    assert not run.is_current("data", "h")
    with pytest.raises(FileNotFoundError, match=r"files of stage 'data' are missing or changed \(sub/stats.json, "):
        run.completion_id("data")


def test_files_fingerprint_follows_contents_names_and_presence(tmp_path):
    (tmp_path / "suite").mkdir()
    (tmp_path / "suite" / "a.jsonl").write_text("1\n")
    paths = [tmp_path / "suite", tmp_path / "adapter"]
    first = files_fingerprint(paths)
    assert files_fingerprint(paths) == first
    (tmp_path / "suite" / "a.jsonl").write_text("2\n")  # same size, other bytes
    second = files_fingerprint(paths)
    (tmp_path / "suite" / "b.jsonl").write_text("")
    third = files_fingerprint(paths)
    (tmp_path / "adapter").mkdir()
    (tmp_path / "adapter" / "w.safetensors").write_bytes(b"x")
    assert len({first, second, third, files_fingerprint(paths)}) == 4


def test_read_jsonl_refuses_non_utf8_and_deep_lines_by_name(tmp_path):
    path = tmp_path / "predictions-x.jsonl"
    path.write_bytes(b'{"id": "r0"}\n{"id": "\xff"}\n')
    with pytest.raises(ValueError, match=r"predictions-x.jsonl:2: not UTF-8"):
        read_jsonl(path)
    path.write_text('{"id": "r0"}\n' + "[" * 100_000 + "]" * 100_000 + "\n")
    with pytest.raises(ValueError, match=r"predictions-x.jsonl:2: nested too deeply"):
        read_jsonl(path)
