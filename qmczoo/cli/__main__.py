"""``python -m qmczoo.cli``: the same as the ``qmczoo`` command."""

from qmczoo.cli import main

main()
