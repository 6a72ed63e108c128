"""Command line: ``python -m slmtune <stage> [hydra overrides]``.

Stages: data, train, eval, calibrate, export, and pipeline (all five in order); a stage runs the upstream stages it
needs first. ``agent`` runs the agent stack on a request or a suite (``slmtune.stages.agent``). ``+recipe=NAME``
selects ``recipes/NAME.yaml``. ``python -m slmtune --help`` lists stages and recipes.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from pathlib import Path
from typing import NoReturn

from slmtune.config import CONFIG_DIR, STAGES, recipe_names, register_configs, to_typed

COMMANDS = (*STAGES, "pipeline", "agent")
PACKAGE_DIR = Path(__file__).resolve().parent
USAGE = """usage: python -m slmtune <stage> [+recipe=NAME] [key=value ...]

stages:
  data       generate verified, decontaminated tool-call data from the function registry
  train      LoRA / QLoRA adapter on the data (loss on assistant tokens only)
  eval       grammar-constrained evaluation on BFCL, the held-out split and user suites
  calibrate  router calibration (confidence vs correctness, thresholds, cascade)
  export     merged model + adapter + card + router.json + manifest, verified by reloading
  pipeline   all five stages in order, skipping stages whose inputs did not change
  agent      run the SLM (+ router + fallback) on a request over catalog tools and print the trace, or measure it
             on a suite (agent.request + agent.tools, or agent.suite; nothing upstream is run)

recipes: {recipes}

examples:
  python -m slmtune pipeline +recipe=gemma270m
  python -m slmtune train +recipe=qwen7b train.max_steps=500
  python -m slmtune eval +recipe=gemma270m eval.adapter=null eval.suites=[bfcl:simple_python]
  python -m slmtune agent +recipe=gemma270m agent.request='Cancel EVT-7731.' 'agent.tools=[cal.cancel_event]'
  python -m slmtune <stage> --cfg job      (print the composed config)

A stage first runs the upstream stages it reads that have not completed with these inputs (train after data; export
after data, train, eval and calibrate); inputs given explicitly (eval.adapter=<dir>, calibrate.predictions=[...],
export.verify=<dir>) need none. Errors you can fix print one line `slmtune: error: ...` (exit status 2); --debug or
SLMTUNE_DEBUG=1 shows their traceback. SLMTUNE_PROGRESS=bar|log|off: progress bars (default on a terminal) or
periodic log lines (default otherwise).
"""


DEBUG_ENV = "SLMTUNE_DEBUG"
RECIPE_OVERRIDE = re.compile(r"^\+{0,2}recipe=(.*)$")


def fail(message: str, status: int = 2) -> NoReturn:
    """One line on stderr, ``slmtune: error: ...``, and exit ``status``."""
    print(f"slmtune: error: {message}", file=sys.stderr)
    sys.exit(status)


def raised_by_slmtune(err: BaseException) -> bool:
    """The innermost frame of ``err``'s traceback is slmtune's own code (a check that words its error)."""
    tb = err.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return tb is not None and Path(tb.tb_frame.f_code.co_filename).resolve().is_relative_to(PACKAGE_DIR)


def is_user_error(err: BaseException) -> bool:
    """What the user can fix from the message alone: a config Hydra or OmegaConf rejects, a file (OSError), an
    error class slmtune names (ToolSchemaError, ExportVerificationError, ...) or a ``ValueError`` slmtune raises
    when checking its input. Anything else is a bug and keeps its traceback."""
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    if isinstance(err, (HydraException, OmegaConfBaseException, OSError)):
        return True
    return type(err).__module__.split(".")[0] == "slmtune" or isinstance(err, ValueError) and raised_by_slmtune(err)


def describe(err: BaseException) -> str:
    """The error as one line where it can be (config errors name the key); named slmtune errors keep their name."""
    from omegaconf.errors import OmegaConfBaseException

    def first_line(text: str) -> str:
        return next((line.strip() for line in text.splitlines() if line.strip()), "")

    def omegaconf_text(exc: OmegaConfBaseException) -> str:
        key = getattr(exc, "full_key", None)
        text = first_line(getattr(exc, "msg", None) or str(exc))
        return f"{key}: {text}" if key else text

    if isinstance(err, OmegaConfBaseException):
        return omegaconf_text(err)
    message = str(err).strip() or type(err).__name__
    if isinstance(err.__cause__, OmegaConfBaseException):
        return f"{first_line(message).rstrip('.')}: {omegaconf_text(err.__cause__)}"
    if type(err).__module__.split(".")[0] == "slmtune":
        return f"{type(err).__name__}: {message}"
    return message


def main(argv: list[str] | None = None) -> None:
    """Run one command. User errors print ``slmtune: error: ...`` and exit 2; ``--debug`` (or ``SLMTUNE_DEBUG=1``)
    shows their traceback instead. Unexpected errors always show theirs."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv or os.environ.get(DEBUG_ENV, "").strip() not in ("", "0")
    argv = [arg for arg in argv if arg != "--debug"]
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE.format(recipes=", ".join(recipe_names())))
        return
    command, overrides = argv[0], argv[1:]
    if command not in COMMANDS:
        fail(f"unknown stage {command!r}; choose one of {', '.join(COMMANDS)}")
    for override in overrides:
        match = RECIPE_OVERRIDE.match(override)
        if match and match.group(1) not in recipe_names():
            fail(f"{override}: unknown recipe {match.group(1)!r}; choose one of {', '.join(recipe_names())}")
    try:
        _run(command, overrides)
    except KeyboardInterrupt:
        if debug:
            raise
        fail("interrupted", status=130)
    except Exception as err:
        if debug or not is_user_error(err):
            raise
        fail(describe(err))


def _run(command: str, overrides: list[str]) -> None:
    import hydra

    register_configs()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    os.environ["HYDRA_FULL_ERROR"] = "1"  # Hydra raises its errors as they are; main() reports them

    failures: list[Exception] = []

    @hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="slmtune")
    def entry(cfg) -> None:
        from slmtune.stages import pipeline

        try:
            typed = to_typed(cfg)
            if command == "pipeline":
                pipeline.run(typed)
            elif command == "agent":
                from slmtune.stages import agent

                agent.run(typed)
            else:
                pipeline.run_stage(typed, command)  # runs the upstream stages it needs first
        except Exception as err:  # raised below, past Hydra's own "Error executing job" report
            failures.append(err)

    sys.argv = [f"slmtune {command}", *overrides]
    entry()
    if failures:
        raise failures[0]
