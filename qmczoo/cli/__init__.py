"""The ``qmczoo`` command line: a thin layer over :mod:`qmczoo.runs` and the registry.

Bad input (unknown molecule, ansatz or option, impossible spin, a usage error such as
``--steps abc``...) is printed as one line ``error: ...`` on stderr with exit code 2, never as
a traceback (:mod:`qmczoo.cli.app`); Ctrl-C is exit code 130.
One module per command: ``catalogue`` (list, info), ``train``, ``evaluate``, ``bench``.
"""

from qmczoo.cli.app import app
from qmczoo.cli import catalogue, train, evaluate, bench  # noqa: E402,F401,I001  (registers the commands, in this order)


def main():
    app()


__all__ = ["app", "main"]
