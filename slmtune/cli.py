"""Command line: ``python -m slmtune <stage> [hydra overrides]``.

Stages: data, train, eval, calibrate, export, and pipeline (all five in order). ``+recipe=NAME`` selects
``recipes/NAME.yaml``. ``python -m slmtune --help`` lists stages and recipes.
"""

from __future__ import annotations

import importlib
import logging
import sys

from slmtune.config import CONFIG_DIR, STAGES, recipe_names, register_configs, to_typed

COMMANDS = (*STAGES, "pipeline")
USAGE = """usage: python -m slmtune <stage> [+recipe=NAME] [key=value ...]

stages:
  data       generate verified, decontaminated tool-call data from the function registry
  train      LoRA / QLoRA adapter on the data (loss on assistant tokens only)
  eval       grammar-constrained evaluation on BFCL, the held-out split and user suites
  calibrate  router calibration (confidence vs correctness, thresholds, cascade)
  export     merged model + adapter + card + router.json + manifest, verified by reloading
  pipeline   all five stages in order, skipping stages whose inputs did not change

recipes: {recipes}

examples:
  python -m slmtune pipeline +recipe=gemma270m
  python -m slmtune train +recipe=qwen7b train.max_steps=500
  python -m slmtune eval +recipe=gemma270m eval.adapter=null eval.suites=[bfcl:simple_python]
  python -m slmtune <stage> --cfg job      (print the composed config)
"""


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE.format(recipes=", ".join(recipe_names())))
        return
    command, overrides = argv[0], argv[1:]
    if command not in COMMANDS:
        sys.exit(f"slmtune: unknown stage {command!r}; choose one of {', '.join(COMMANDS)}")
    import hydra

    register_configs()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    @hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="slmtune")
    def entry(cfg) -> None:
        typed = to_typed(cfg)
        importlib.import_module(f"slmtune.stages.{command}").run(typed)

    sys.argv = [f"slmtune {command}", *overrides]
    entry()
