"""``python -m slmtune <stage> [overrides]`` — see slmtune.cli."""

from slmtune.cli import main

main()
