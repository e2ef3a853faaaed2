#!/usr/bin/env bash
# tests/device/check.sh — the device check: builds the test suite and bench_device for sm_90
# with nvcc (CMake preset `device`), runs every typed test on Thrust<CUDA>, then the device
# benchmark (plain and exact meta steps of LeNet and ResNet-32, float, batch 100).
#
#   tests/device/check.sh            build, test, benchmark (needs nvcc and an NVIDIA GPU)
#   tests/device/check.sh build      build only (any machine with nvcc: no GPU needed)
#   tests/device/check.sh run        test and benchmark what `build` made
#
# Results go to $OUT (default build/device/results): tests.txt, bench.json, bench.txt.
# Both programs are run with L2RW_REQUIRE_DEVICE=1, so that without a CUDA device they fail
# instead of skipping. JOBS sets the build's parallelism (default: every core); on a 16-core
# machine with one H200 the whole check is meant to take under 8 minutes.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
build="$root/build/device"
out=${OUT:-$build/results}
jobs=${JOBS:-$(nproc)}
mode=${1:-all}

case "$mode" in
    all | build | run) ;;
    *)
        echo "check.sh: unknown mode '$mode' (want build, run, or nothing for both)" >&2
        exit 2
        ;;
esac

if [[ $mode != run ]]; then
    command -v nvcc >/dev/null || [[ -x /usr/local/cuda/bin/nvcc ]] || {
        echo "check.sh: nvcc not found (the CUDA toolkit is needed to build)" >&2
        exit 2
    }
    start=$SECONDS
    (cd "$root" && cmake --preset device >/dev/null)
    cmake --build "$build" -j "$jobs" --target nvcc_thrust_cuda nvcc_bench_device
    echo "check.sh: built in $((SECONDS - start)) s"
fi

if [[ $mode != build ]]; then
    tests="$build/tests/nvcc_thrust_cuda/nvcc_thrust_cuda"
    bench="$build/tests/nvcc_bench_device/nvcc_bench_device"
    for exe in "$tests" "$bench"; do
        [[ -x $exe ]] || {
            echo "check.sh: $exe is missing: run 'tests/device/check.sh build' first" >&2
            exit 2
        }
    done
    mkdir -p "$out"
    nvidia-smi -L 2>&1 | tee "$out/gpu.txt" || true
    export L2RW_REQUIRE_DEVICE=1
    start=$SECONDS
    status=0
    "$tests" 2>&1 | tee "$out/tests.txt" || status=1
    echo "check.sh: tests took $((SECONDS - start)) s"
    start=$SECONDS
    "$bench" --benchmark_out="$out/bench.json" --benchmark_out_format=json 2>&1 |
        tee "$out/bench.txt" || status=1
    grep -q "ERROR OCCURRED" "$out/bench.txt" && status=1
    echo "check.sh: benchmark took $((SECONDS - start)) s; results in $out"
    exit $status
fi
