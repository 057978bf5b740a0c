#!/usr/bin/env bash
# A prepared GPU check for the sometimes-lent H200 machine (JAX and PyTorch there, no TensorFlow).
#
#   scripts/gpu_check.sh            run it (on the device machine: see README "GPU check")
#   DRY_RUN=1 scripts/gpu_check.sh  print the commands only (what the CPU test runs)
#
# Same code as on CPU, with backend=jax and the in-memory data path. It runs, one store for all:
#   1. the mini model and the full Xception, each in fp32 and in bf16 with XLA;
#   2. N mini variants at once (joblib, N processes sharing the GPU) vs the same N one after another;
# then prints one table: images/s per run and the wall time of each phase.
# Wheels that the machine lacks (keras, hydra, mlflow and their needs) travel in .whl/ (see README).
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
N=${N_VARIANTS:-4}
EPOCHS=${EPOCHS:-3}
STORE=${STORE:-/tmp/xablate-gpu/mlflow.db}
OUT_DIR=${OUT:-/tmp/xablate-gpu}
COMMON=(backend=jax data=digits train.verbose=2 train.save_model=false train.checkpoint=false
        "tracking.uri=sqlite:///${STORE}" hydra.run.dir="${OUT_DIR}/outputs/\${now:%H-%M-%S-%f}"
        hydra.sweep.dir="${OUT_DIR}/multirun/\${study}/\${now:%H-%M-%S-%f}")

run() {  # echo, then run unless DRY_RUN; the phase's wall time goes to the phase log
  local phase=$1; shift
  echo "+ $*"
  if [[ -z "${DRY_RUN:-}" ]]; then
    local start=$(date +%s.%N)
    "$@"
    echo "${phase},$(echo "$(date +%s.%N) - ${start}" | bc)" >> "${OUT_DIR}/phases.csv"
  fi
}

if [[ -z "${DRY_RUN:-}" ]]; then
  if [[ -d .whl ]]; then
    $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
    export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
  fi
  mkdir -p "${OUT_DIR}"; rm -f "${STORE}" "${OUT_DIR}/phases.csv"
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
  $PY -c "import jax; print('jax', jax.__version__, jax.devices())"
fi
export XLA_PYTHON_CLIENT_PREALLOCATE=false  # several processes share the GPU in phase 2

# 1. mini and full Xception, fp32 vs bf16 + XLA (full model: 71x71, the stock stem's minimum)
for precision in "fp32 train.jit_compile=auto" "bf16 train.jit_compile=true"; do
  set -- $precision
  run "mini_$1" $PY run.py "${COMMON[@]}" study=gpu_precision model=mini train.epochs="${EPOCHS}" \
      train.batch_size=256 train.precision="$1" "$2"
  run "xception_$1" $PY run.py "${COMMON[@]}" study=gpu_precision model=xception data.image_size=71 \
      train.epochs=2 train.batch_size=64 data.limit_train=1024 train.precision="$1" "$2"
done

# 2. N mini variants at once vs one after another (seeds 0..N-1: same model, same work)
SEEDS=$(seq -s, 0 $((N - 1)))
run "sequential_${N}" $PY run.py -m "${COMMON[@]}" study=gpu_sequential seed="${SEEDS}" train.epochs="${EPOCHS}"
run "parallel_${N}" $PY run.py -m "${COMMON[@]}" study=gpu_parallel seed="${SEEDS}" train.epochs="${EPOCHS}" \
    hydra/launcher=parallel hydra.launcher.n_jobs="${N}"

if [[ -z "${DRY_RUN:-}" ]]; then
  $PY scripts/gpu_report.py "sqlite:///${STORE}" "${OUT_DIR}/phases.csv" | tee "${OUT_DIR}/gpu_check.md"
fi
