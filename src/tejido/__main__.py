"""``python -m tejido ...``: the same as the ``tejido`` command."""

from tejido.cli.main import main

main()
