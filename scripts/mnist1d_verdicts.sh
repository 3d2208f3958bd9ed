#!/usr/bin/env bash
# Reproduce the MNIST-1D paper's two reference points with dlrun and print each verdict:
# logistic regression (high bias, ~32% accuracy) and the 2x100 ReLU MLP (high variance,
# train ~100%, dev ~68%). Adam, lr 1e-2, batch 100, 6000 steps, on the CPU.
set -euo pipefail
out="${1:-outputs/mnist1d-verdicts}"
for model in logreg mlp; do
  dlrun train data=mnist1d model=$model optimizer=adam optimizer.lr=1e-2 optimizer.batch_size=100 \
    trainer.steps=6000 trainer.device=cpu trainer.progress=none hydra.run.dir="$out/$model" > /dev/null
  python - "$out/$model/summary.json" "$model" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
m = s["metrics"]
print(f"{sys.argv[2]:7s} train acc {m['train']['accuracy']:.3f}  dev acc {m['dev']['accuracy']:.3f}  verdict: {s['diagnosis']['verdict']}")
PY
done
