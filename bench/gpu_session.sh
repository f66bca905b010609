#!/usr/bin/env bash
# What a GPU session runs, in order of need, each part a few minutes: the checks of the CUDA
# code that landed without a GPU, the side-by-side speed benchmarks, and the dev-set accuracy
# runs that choose recipes. Each step logs to its own file in a scratch folder, packed after
# every step into the one archive OUT/PART.tgz (default OUT ./gpu-session): the device
# tool brings back only a few files, and a part cut short by its time limit still leaves
# what it did. A summary line per step goes to stdout. STEP_LIMIT=S stops any step after S
# seconds (its log so far is kept), so a part fits the device's time limit.
#
#   bench/gpu_session.sh checks   [OUT]             conformance per backend and precision,
#                                                   the GPU tests, side by side (about 2 min
#                                                   on an H100)
#   bench/gpu_session.sh speed    [OUT]             training-step benchmarks (about 5 min; the
#                                                   cnn2d throughput alone took 181 s at the
#                                                   default 40 steps x 5 rounds)
#   bench/gpu_session.sh cpu      [OUT]             NumPy against PyTorch on 16 and 2 of the
#                                                   host's cores, per layer (about 3 min)
#   bench/gpu_session.sh accuracy DATA SPLIT [OUT]  dev split, 3 seeds: precisions, label
#                                                   smoothing, SWA, precise BN (about 8 min
#                                                   alone, 3 with JOBS=4)
#
# accuracy runs every line of VARIANTS (a file of `evaluate` options, one variant a line;
# default: the list below) at every seed of SEEDS (default "0 1 2"), JOBS evaluations at
# a time (default 1: one GPU is far from busy with one), and ends with
# `bench/accuracy_table.py`'s table of the means.
#
# Run from the repository root with genrecnn, CuPy and PyCUDA importable (python3 -m genrecnn).
set -uo pipefail
part=${1:?usage: bench/gpu_session.sh checks|speed|cpu|accuracy ...}
shift
if [ "$part" = accuracy ]; then
    data=${1:?accuracy needs DATA and SPLIT}; split=${2:?accuracy needs DATA and SPLIT}; shift 2
fi
dest=${1:-gpu-session}
out=$(mktemp -d)/$part
mkdir -p "$dest" "$out"
export NCCL_NVLS_ENABLE=0
step() {   # step NAME COMMAND...: run it (at most STEP_LIMIT s, 0: no limit), log to
    local name=$1; shift          # NAME.log, say how it ended, pack the logs
    local t0=$SECONDS
    timeout "${STEP_LIMIT:-0}" "$@" > "$out/$name.log" 2>&1
    echo "$name: exit $? in $((SECONDS - t0)) s; $(tail -n 1 "$out/$name.log")" \
        | tee -a "$out/summary.txt"
    pack
}
pack() {   # the part's logs so far into its one archive (steps may run side by side)
    flock "$out.lock" tar czf "$dest/$part.tgz" -C "$(dirname "$out")" "$part"
}

case $part in
checks)
    step device nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
    # side by side: none of them is timed, and one alone leaves the GPU mostly idle
    for be in cupy pycuda; do
        step "conformance-$be" python3 -m genrecnn conformance --backend "$be" &
    done
    step pytest-gpu python3 -m pytest -q -rs tests/test_precision_training.py \
        tests/test_cupy_backend.py tests/test_pycuda_backend.py tests/test_fused_cuda.py \
        tests/test_emulated_kernels.py tests/test_gpu_mixing.py tests/test_fused_network.py \
        tests/test_emulated_cupy.py tests/test_smoothing_swa.py tests/test_trainer.py \
        tests/test_stream_path.py tests/test_collective.py tests/test_conformance.py
    wait
    ;;
speed)
    for p in fp32 tf32 bf16; do
        step "kernels-cupy-$p-b256" python3 bench/gpu_kernels.py --arch cnn2d --frames 256 \
            --batch 256 --precision "$p" --rows 30 --steps 4
    done
    step throughput-cnn2d python3 bench/gpu_train_throughput.py --arch cnn2d --frames 256 \
        --batches 32,256 --precisions fp32,tf32,bf16 --steps 10 --rounds 3 \
        --json "$out/throughput-cnn2d.json"
    for batch in 32 256; do
        step "implicit-cupy-b$batch" python3 bench/gpu_kernels.py --implicit --arch cnn2d \
            --frames 256 --batch "$batch" --backend cupy
    done
    step throughput-cangea python3 bench/gpu_train_throughput.py --arch cangea2016 \
        --batches 1,32,256 --precisions fp32,tf32,bf16 --json "$out/throughput-cangea.json"
    for be in cupy pycuda; do
        step "kernels-$be" python3 bench/gpu_kernels.py --arch cnn2d --frames 256 --batch 32 \
            --backend "$be"
        step "fused-op-$be" python3 bench/gpu_kernels.py --fused-op --arch cnn2d --frames 256 \
            --batch 32 --backend "$be"
    done
    for batch in 32 256; do
        step "implicit-pycuda-b$batch" python3 bench/gpu_kernels.py --implicit --arch cnn2d \
            --frames 256 --batch "$batch" --backend pycuda
    done
    ;;
cpu)
    for threads in 16 2; do
        for arch in cangea2016 cnn2d; do
            frames=1292; [ "$arch" = cnn2d ] && frames=256
            step "cpu-$arch-t$threads" taskset -c "0-$((threads - 1))" python3 \
                bench/cpu_train_step.py --threads "$threads" --arch "$arch" --frames "$frames"
        done
    done
    step numpy-scaling taskset -c 0-15 python3 bench/numpy_scaling.py
    ;;
accuracy)
    variants=$out/variants.txt
    if [ -n "${VARIANTS:-}" ]; then cp "$VARIANTS" "$variants"; else
        printf '%s\n' "--precision fp32" "--precision tf32" "--precision bf16" \
            "--label-smoothing 0.1" "--precise-bn" "--swa 10" "--swa 20" > "$variants"
    fi
    export data split out
    evaluate_one() {   # evaluate_one SEED OPTIONS: one dev-split run, its JSON in a log
        local name="s$1${2// /_}"; name=${name//\//_}; local t0=$SECONDS
        # shellcheck disable=SC2086
        python3 -m genrecnn evaluate "$data" --split "$split" --backend cupy --seed "$1" \
            --no-baseline --json $2 > "$out/$name.json" 2> "$out/$name.err"
        echo "$name: exit $? in $((SECONDS - t0)) s" >> "$out/summary.txt"
    }
    export -f evaluate_one
    while read -r v; do
        [ -z "$v" ] && continue
        for seed in ${SEEDS:-0 1 2}; do printf '%s\0%s\0' "$seed" "$v"; done
    done < "$variants" | xargs -0 -n 2 -P "${JOBS:-1}" bash -c 'evaluate_one "$0" "$1"' &
    while kill -0 $! 2>/dev/null; do      # pack as runs end, so a cut-short part keeps them
        sleep 5; pack
    done
    step table python3 bench/accuracy_table.py "$out"
    cat "$out/table.log"
    ;;
*)
    echo "unknown part '$part': use checks, speed, cpu or accuracy" >&2
    exit 2
    ;;
esac
