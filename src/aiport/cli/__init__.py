"""The ``aiport`` command line.

``import aiport`` never imports this package; ``aiport.cli`` itself stays light until
:func:`main` runs (typer, rich and the commands load then).
"""

from __future__ import annotations

__all__ = ["main"]


def main() -> None:
    """Run the ``aiport`` command (the console script's entry point)."""
    from aiport.cli._app import app

    app(prog_name="aiport")
