"""Entry point: `python -m simulator <command>` (see simulator/cli.py)."""

from simulator.cli import main

raise SystemExit(main())
