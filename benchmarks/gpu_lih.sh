#!/usr/bin/env bash
# The LiH workload (FermiNet small: 4 x (128, 16), 8 dense determinants, batch 256, KFAC, float32)
# on one GPU: qmczoo beside FermiNet's own code, in one run, on the same device.
# Needs: qmczoo installed with the CUDA extra (pip install -e ".[cuda]") and FermiNet's code
# built by ../shared/anchors/setup.sh, with a CUDA jax in its virtual environment
# ("$ANCHORS/venv-fn/bin/pip install 'jax[cuda12]'" at the version setup.sh installed).
# Usage: benchmarks/gpu_lih.sh [PYTHON]     (PYTHON: the interpreter with qmczoo installed)
set -e
here=$(cd "$(dirname "$0")" && pwd)
anchors=${ANCHOR_SCRIPTS:-$here/../../shared/anchors}
ANCHORS=${ANCHORS:-${TMPDIR:-/tmp}/anchors}
py=${1:-python}
"$py" -c "import jax; d = jax.devices(); assert d[0].platform == 'gpu', d; print('qmczoo on', d[0].device_kind)"
"$ANCHORS/venv-fn/bin/python" -c "import jax; d = jax.devices(); assert d[0].platform == 'gpu', d; print('FermiNet on', d[0].device_kind)"
echo "== FermiNet's code: marginal s/step over 200 steps (its default, then its forward Laplacian)"
bash "$anchors/speed_best.sh" | grep -v 1blas
echo "== qmczoo: FermiNet small on LiH, one GPU"
"$py" "$here/lih_kfac.py" --steps 260
