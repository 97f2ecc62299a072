#!/usr/bin/env bash
# Seconds per KFAC step of the zoo's hybrid beside DeepQMC's own FermiNet–PauliNet blend (its
# `default` ansatz: backflow, electronic cusp, convolutions, 16 dense determinants), on the
# anchors' LiH workload (batch 256, 10 decorrelation steps, KFAC, float32), in one run; then
# qmczoo's other ansätze on the same workload. Needs the anchors (../shared/anchors/setup.sh).
# Usage: benchmarks/compare_zoo_speed.sh [PYTHON]
set -e
here=$(cd "$(dirname "$0")" && pwd)
export ANCHORS=${ANCHORS:-${TMPDIR:-/tmp}/anchors}
py=${1:-python}
R=$ANCHORS/runs; mkdir -p "$R"
dq() {  # DeepQMC's default ansatz, STEPS, OUT
  rm -rf "$2"; mkdir -p "$2"
  (cd "$2" && "$ANCHORS/venv-dq/bin/deepqmc" task=train_ferminet ansatz=default hamil/mol=LiH \
     task.electron_batch_size=256 task.steps=$1 task.pretrain_steps=0 task.workdir="$2" \
     hydra.run.dir="$2/hydra" > "$2/log.txt" 2>&1)
}
echo "== DeepQMC default ansatz on LiH: marginal s/step over 200 steps"
for n in 60 260; do /usr/bin/time -f %e -o "$R/dqdef$n.t" bash -c "$(declare -f dq); dq $n $R/dqdef$n"; done
python3 -c "import sys; a,b=(float(open(f).read()) for f in sys.argv[1:]); print(f'dq default: {(b-a)/200:.3f} s/step, start-up {a-60*(b-a)/200:.1f} s')" \
  "$R/dqdef60.t" "$R/dqdef260.t"
for ansatz in hybrid ferminet paulinet pair_product deepwf; do
  echo "== qmczoo $ansatz small on LiH"
  "$py" "$here/lih_kfac.py" --steps 260 --ansatz $ansatz --eval-steps 0 | grep -E "s/step \(steps|first step"
done
