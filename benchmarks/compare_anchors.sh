#!/usr/bin/env bash
# Seconds per KFAC step of qmczoo beside the two anchors (FermiNet, DeepQMC) in one run, on
# the common LiH workload (see shared/anchors/README.md). Needs the anchors built with
# ../shared/anchors/setup.sh (ANCHORS, default ${TMPDIR:-/tmp}/anchors).
# Usage: benchmarks/compare_anchors.sh [PYTHON]   (PYTHON: the interpreter with qmczoo installed)
set -e
here=$(cd "$(dirname "$0")" && pwd)
anchors=${ANCHOR_SCRIPTS:-$here/../../shared/anchors}
py=${1:-python}
echo "== anchors (FermiNet, DeepQMC): marginal s/step over 200 steps"
bash "$anchors/speed.sh"
echo "== qmczoo: FermiNet small on LiH"
"$py" "$here/lih_kfac.py" --steps 260
