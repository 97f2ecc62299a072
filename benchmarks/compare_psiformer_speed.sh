#!/usr/bin/env bash
# Seconds per KFAC step of qmczoo's psiformer beside FermiNet's own Psiformer network, in one run.
# Workload: LiH (3.015 bohr), batch 256, 4 attention layers of 4 heads x 16 (width 64), one MLP
# layer of width 64, layer norm, log-rescaled inputs, 8 dense determinants, simple e-e cusp
# Jastrow, 10 MCMC steps per step, KFAC, float32. FermiNet's time is the marginal cost of 200
# steps (a 260-step run minus a 60-step run); qmczoo's is steps 61-260 of one run.
# Needs the anchors built with ../shared/anchors/setup.sh (ANCHORS, default ${TMPDIR:-/tmp}/anchors).
# Usage: benchmarks/compare_psiformer_speed.sh [PYTHON]   (PYTHON: the interpreter with qmczoo installed)
set -e
here=$(cd "$(dirname "$0")" && pwd)
ANCHORS=${ANCHORS:-${TMPDIR:-/tmp}/anchors}; R=$ANCHORS/runs; mkdir -p "$R"
py=${1:-python}
for n in 60 260; do
  rm -rf "$R/psi$n"
  /usr/bin/time -f %e -o "$R/psi$n.t" "$ANCHORS/venv-fn/bin/ferminet" \
    --config "$ANCHORS/ferminet/ferminet/configs/diatomic.py" \
    --config.system.molecule_name=LiH --config.system.bond_length=3.015 --config.system.units=bohr \
    --config.batch_size=256 --config.network.network_type=psiformer \
    --config.network.psiformer.num_layers=4 --config.network.psiformer.num_heads=4 \
    --config.network.psiformer.heads_dim=16 "--config.network.psiformer.mlp_hidden_dims=(64,)" \
    --config.network.psiformer.use_layer_norm=True --config.network.rescale_inputs=True \
    --config.network.determinants=8 --config.network.full_det=True \
    --config.pretrain.iterations=0 --config.mcmc.burn_in=10 --config.mcmc.steps=10 \
    --config.optim.iterations=$n --config.optim.optimizer=kfac \
    --config.log.save_path="$R/psi$n" --config.log.save_frequency=1000 > "$R/psi$n.log" 2>&1
done
python3 -c "import sys; a,b=(float(open(f).read()) for f in sys.argv[1:]); print(f'FermiNet psiformer: {(b-a)/200:.3f} s/step, start-up {a-60*(b-a)/200:.1f} s')" \
  "$R/psi60.t" "$R/psi260.t"
echo "== qmczoo psiformer (small) on LiH"
"$py" "$here/lih_kfac.py" --ansatz psiformer --preset small --steps 260 --eval-steps 0
