"""Option values checked against the type of their default: the rule the registry applies to every
ansatz and layer option (:func:`qmczoo.registry.get_ansatz`, :func:`qmczoo.registry.get_layer`),
plug-in entries included, since the default in the entry decides the type."""

from __future__ import annotations

import math

from qmczoo.errors import ConfigError


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_pair_list(value) -> bool:
    return (isinstance(value, (list, tuple)) and len(value) > 0
            and all(isinstance(p, (list, tuple)) and len(p) == 2 and all(_is_int(v) for v in p) for p in value))


def check_option(ansatz: str, key: str, value, default, choices=None):
    """``value`` checked against the type of the option's ``default`` (from the registry).

    The default decides the type, so plug-in entries are checked the same way:

    * a bool default needs a bool (YAML ``true``/``false``/``yes``/``no``);
    * an int default needs an int (not a float or a bool), at least 1 when the default is
      at least 1 (counts such as ``determinants``), else at least 0;
    * a float default needs a finite number;
    * a str default needs a string;
    * a list of integer pairs (``hidden_dims``) needs a non-empty list of pairs of ints >= 1;
      any other list default needs a list;
    * a None default accepts anything (the factory checks it);
    * ``choices`` (from the entry's ``choices`` mapping), if given, lists the allowed values
      (they replace the rules above: ``lmax`` may be 0 although its default is 1).

    Raises:
      ConfigError: ``option 'determinants' of ferminet expects an integer >= 1, got 'banana'``.
    """
    def bad(expects):
        return ConfigError(f"option {key!r} of {ansatz} expects {expects}, got {value!r}")

    if choices is not None:  # the listed values are the allowed ones (lmax: [0, 1, 2, 3] with default 1)
        if value not in choices or isinstance(value, bool) != isinstance(default, bool):
            raise bad(f"one of {', '.join(map(str, choices))}")
        return value
    if default is None:
        return value
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise bad("true or false")
        return value
    if _is_int(default):
        low = 1 if default >= 1 else 0
        if not _is_int(value):
            raise bad(f"an integer >= {low}")
        if value < low:
            raise bad(f"an integer >= {low}")
        return value
    if isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise bad("a finite number")
        return float(value)
    if isinstance(default, str):
        if not isinstance(value, str):
            raise bad("a string")
        return value
    if isinstance(default, (list, tuple)):
        if _is_pair_list(default):
            if not _is_pair_list(value) or any(v < 1 for p in value for v in p):
                raise bad("a non-empty list of pairs of positive integers, e.g. [[64, 8], [64, 8]]")
            return [list(p) for p in value]
        if not isinstance(value, (list, tuple)):
            raise bad("a list")
        return value
    return value
