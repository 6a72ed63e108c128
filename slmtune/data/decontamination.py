"""Decontamination against the BFCL v4 data: no BFCL function name, no 8-gram of a BFCL question.

:meth:`BfclIndex.load` locates ``bfcl_eval/data`` with ``importlib.util.find_spec`` — the package is never imported
(importing its checker pulls in every API client it supports) — and reads every ``BFCL_v4_*.json`` question file
(JSON lines: ``question`` = turns of messages, ``function`` = function docs) plus the multi-turn function docs in
``multi_turn_func_doc/``. It keeps

- the function names, exactly and normalised (case-folded, ``.``/``-`` → ``_``), and
- the word 8-grams of every question message (lower-cased, Unicode word tokens; punctuation ignored).

:meth:`BfclIndex.check` lists a sample's hits: ``function_name:<name>`` for an offered tool or a call named like a
BFCL function, ``ngram:<8 words>`` for an 8-gram of the sample's messages found in BFCL.
"""

from __future__ import annotations

import importlib.util
import json
import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

NGRAM = 8
INSTALL_HINT = "pip install --no-deps bfcl-eval==2026.3.23"
_WORD = re.compile(r"\w+", re.UNICODE)


class BfclNotInstalledError(RuntimeError):
    """bfcl_eval (which ships the BFCL data) is not installed."""


def normalise_function_name(name: str) -> str:
    return re.sub(r"[.\-]", "_", name).casefold()


def words(text: str) -> list[str]:
    """Normalised word tokens: NFKC, case-folded, Unicode word characters only."""
    return _WORD.findall(unicodedata.normalize("NFKC", text).casefold())


def ngrams(text: str, n: int = NGRAM) -> list[str]:
    tokens = words(text)
    return [" ".join(tokens[i:i + n]) for i in range(len(tokens) - n + 1)]


def find_bfcl_data_dir() -> Path:
    """``.../bfcl_eval/data`` of the installed bfcl-eval package, without importing it."""
    spec = importlib.util.find_spec("bfcl_eval")
    if spec is None or not spec.submodule_search_locations:
        raise BfclNotInstalledError(
            "BFCL data not found: the bfcl_eval package is not installed. Install it (without its heavy "
            f"dependencies) with: {INSTALL_HINT}")
    data = Path(list(spec.submodule_search_locations)[0]) / "data"
    if not data.is_dir():
        raise BfclNotInstalledError(f"bfcl_eval is installed but has no data directory at {data}; reinstall with: "
                                    f"{INSTALL_HINT}")
    return data


def _iter_records(path: Path) -> Iterable[dict[str, Any]]:
    text = path.read_text(encoding="utf-8")
    stripped = text.lstrip()
    if stripped.startswith("[") or (stripped.startswith("{") and "\n{" not in stripped.strip()):
        try:
            doc = json.loads(text)
        except json.JSONDecodeError:
            doc = None
        if isinstance(doc, list):
            yield from (r for r in doc if isinstance(r, dict))
            return
        if isinstance(doc, dict):
            yield doc
            return
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict):
            yield record


def _question_texts(question: Any) -> Iterable[str]:
    """Texts of a BFCL ``question`` (a list of turns, each a list of messages; older files: a list of messages)."""
    if isinstance(question, str):
        yield question
    elif isinstance(question, Mapping):
        content = question.get("content")
        if isinstance(content, str):
            yield content
    elif isinstance(question, list):
        for item in question:
            yield from _question_texts(item)


def _function_names(functions: Any) -> Iterable[str]:
    if isinstance(functions, Mapping):
        functions = [functions]
    if isinstance(functions, list):
        for function in functions:
            if isinstance(function, Mapping):
                function = function.get("function", function) if function.get("type") == "function" else function
                name = function.get("name")
                if isinstance(name, str):
                    yield name


@dataclass
class BfclIndex:
    """BFCL function names and question 8-grams."""

    function_names: set[str] = field(default_factory=set)
    ngram_set: set[str] = field(default_factory=set)
    files: list[str] = field(default_factory=list)
    num_questions: int = 0
    n: int = NGRAM
    _normalised_names: set[str] = field(default_factory=set, repr=False)

    def __post_init__(self) -> None:
        self._normalised_names = {normalise_function_name(n) for n in self.function_names}

    @classmethod
    def from_texts(cls, questions: Iterable[str], function_names: Iterable[str] = (), n: int = NGRAM) -> BfclIndex:
        """An index from raw texts (tests; other benchmarks)."""
        index = cls(function_names=set(function_names), n=n)
        for text in questions:
            index.add_question(text)
        return index

    def add_question(self, text: str) -> None:
        self.num_questions += 1
        self.ngram_set.update(ngrams(text, self.n))

    def add_function_name(self, name: str) -> None:
        self.function_names.add(name)
        self._normalised_names.add(normalise_function_name(name))

    @classmethod
    def load(cls, data_dir: Path | str | None = None, n: int = NGRAM) -> BfclIndex:
        """Read every ``BFCL_v4_*.json`` question file (and the multi-turn function docs) of the installed
        bfcl-eval; raise :class:`BfclNotInstalledError` with the install command when it is missing."""
        data = Path(data_dir) if data_dir is not None else find_bfcl_data_dir()
        files = sorted(data.glob("BFCL_v4_*.json"))
        if not files:
            raise BfclNotInstalledError(f"no BFCL_v4_*.json files in {data}; reinstall with: {INSTALL_HINT}")
        index = cls(n=n)
        for path in files:
            index.files.append(path.name)
            for record in _iter_records(path):
                if "question" not in record and "function" not in record:
                    continue        # e.g. BFCL_v4_format_sensitivity.json maps categories to ids
                for text in _question_texts(record.get("question")):
                    index.add_question(text)
                for name in _function_names(record.get("function")):
                    index.add_function_name(name)
        doc_dir = data / "multi_turn_func_doc"
        if doc_dir.is_dir():
            for path in sorted(doc_dir.glob("*.json")):
                index.files.append(f"multi_turn_func_doc/{path.name}")
                for record in _iter_records(path):
                    for name in _function_names(record):
                        index.add_function_name(name)
        return index

    # -- checks --------------------------------------------------------------------------------------------------

    def is_bfcl_function(self, name: str) -> bool:
        return name in self.function_names or normalise_function_name(name) in self._normalised_names

    def text_hits(self, text: str) -> list[str]:
        return [g for g in ngrams(text, self.n) if g in self.ngram_set]

    def check(self, sample: Mapping[str, Any]) -> list[str]:
        """Hits of one sample: ``function_name:<name>`` and ``ngram:<words>`` (empty list = clean)."""
        hits: list[str] = []
        names: list[str] = []
        for tool in sample.get("tools") or []:
            if isinstance(tool, Mapping):
                function = tool.get("function", tool) if tool.get("type") == "function" else tool
                if isinstance(function.get("name"), str):
                    names.append(function["name"])
        calls = list(sample.get("tool_calls") or [])
        for message in sample.get("messages") or []:   # a multi_turn conversation's calls and tool results
            if isinstance(message, Mapping):
                calls += message.get("tool_calls") or []
                if message.get("role") == "tool":
                    calls.append(message)
        for call in calls:
            if isinstance(call, Mapping) and isinstance(call.get("name"), str):
                names.append(call["name"])
        seen: set[str] = set()
        for name in names:
            if name not in seen and self.is_bfcl_function(name):
                hits.append(f"function_name:{name}")
            seen.add(name)
        for message in sample.get("messages") or []:
            content = message.get("content") if isinstance(message, Mapping) else None
            if isinstance(content, str):
                hits.extend(f"ngram:{g}" for g in self.text_hits(content))
        return hits

    def summary(self) -> dict[str, Any]:
        return {"files": len(self.files), "questions": self.num_questions, "function_names": len(self.function_names),
                "ngrams": len(self.ngram_set), "n": self.n}
