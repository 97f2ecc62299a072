"""An example qmczoo plug-in (see qmczoo's docs/plugins.md).

qmczoo finds this package through its ``qmczoo.registry`` entry point (``pyproject.toml``) and
reads :data:`registry`: entries in the same format as qmczoo's own ``registry.yaml``. Nothing
here imports jax or flax, so ``qmczoo list`` stays fast; the factories are imported when used.
"""

from pathlib import Path

import yaml

registry = yaml.safe_load((Path(__file__).parent / "registry.yaml").read_text())
