"""``python -m aiport.cli``: the same as the ``aiport`` command."""

from aiport.cli import main

main()
