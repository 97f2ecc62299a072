"""Record the suite's per-test durations for the quick subset (``pytest -m "not slow"``).

    pytest -q -p no:randomly --durations=0 > durations.log      # the whole suite
    python tests/record_durations.py durations.log             # writes tests/durations.json

``tests/durations.json`` maps each test id to ``[call, setup]`` seconds (tests under 0.5 s are
left out). ``tests/conftest.py`` marks ``slow`` every test that took at least ``QUICK_LIMIT``
seconds, and every test that shares a module-scoped fixture whose setup took that long, so the
quick subset stays quick as tests are added: record again when it has grown slow.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

LINE = re.compile(r"\s*([\d.]+)s (call|setup|teardown)\s+(tests/\S+)")


def _dump(kept: dict) -> str:
    """One test a line, sorted by id."""
    lines = [f"{json.dumps(k, ensure_ascii=False)}: {json.dumps(v)}" for k, v in sorted(kept.items())]
    return "{\n" + ",\n".join(lines) + "\n}\n"


def main(log: str) -> None:
    times: dict[str, list[float]] = {}
    for line in Path(log).read_text().splitlines():
        m = LINE.match(line)
        if m and m.group(2) != "teardown":
            entry = times.setdefault(m.group(3), [0.0, 0.0])
            entry[0 if m.group(2) == "call" else 1] += float(m.group(1))
    kept = {k: [round(c, 1), round(s, 1)] for k, (c, s) in sorted(times.items()) if c + s >= 0.5}
    out = Path(__file__).with_name("durations.json")
    out.write_text(_dump(kept))
    print(f"wrote {out}: {len(kept)} tests of {len(times)} timed")


if __name__ == "__main__":
    main(sys.argv[1])
