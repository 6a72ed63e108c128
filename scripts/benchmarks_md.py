"""Shared by the benchmark scripts: replace (or append) one ``## `` section of BENCHMARKS.md."""

from __future__ import annotations

from pathlib import Path


def update_section(path: Path, heading: str, body: str) -> None:
    """Replace the section starting with ``heading`` by ``body`` (append it if absent); other sections are kept."""
    text = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n"
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith(heading)), None)
    if start is None:
        new = text.rstrip("\n") + "\n\n" + body.rstrip("\n") + "\n"
    else:
        end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
        tail = [""] + lines[end:] if end < len(lines) else []
        new = "\n".join(lines[:start] + body.rstrip("\n").splitlines() + tail) + "\n"
    path.write_text(new, encoding="utf-8")
