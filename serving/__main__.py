"""`python -m serving`: run the serving tier under gunicorn with the committed config."""

from __future__ import annotations

import sys
from pathlib import Path

CONFIG = Path(__file__).resolve().parent / "gunicorn_conf.py"


def main(argv: list[str] | None = None) -> None:
    """Replace argv with the gunicorn command line for serving.app:create_app() and run it."""
    from gunicorn.app.wsgiapp import run

    sys.argv = ["gunicorn", "-c", str(CONFIG), *(argv or []), "serving.app:create_app()"]
    run()


if __name__ == "__main__":
    main(sys.argv[1:])
