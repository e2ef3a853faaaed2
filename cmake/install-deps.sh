#!/usr/bin/env bash
# Installs the Debian 12 packages l2rw's build needs: `apt-get update`, then
# `apt-get install -y --no-install-recommends` of the chosen groups. The one list of them:
# the README's quick start and .ci/run both call this script.
#
#   cmake/install-deps.sh          the default group: build and run the examples and the tests
#   cmake/install-deps.sh --ci     the default group and what .ci/run needs besides
#   cmake/install-deps.sh --print  print the packages of the chosen groups, install nothing
#
# Runs apt-get directly in a root shell and through sudo in a user shell; with neither it
# stops with an error. The CUDA toolkit (nvcc and Thrust, for the Thrust backend's tests and
# the `ci` preset) is not a Debian 12 package: install it from NVIDIA.
set -euo pipefail

# Default: compiler, build tools, Eigen and zlib (the library), doctest (the tests), Google
# Benchmark (the benchmarks), CLI11, gnuplot and Fashion-MNIST (the examples), OpenBLAS's
# OpenMP build (the opt-in l2rw::blas target the examples and benchmarks link), oneDNN (the
# opt-in l2rw::onednn target: their float convolutions), OpenMPI (the opt-in l2rw::mpi
# target: the data-parallel tests, example and benchmark, mpiexec).
default_packages=(g++ cmake ninja-build libeigen3-dev doctest-dev libbenchmark-dev zlib1g-dev
    libcli11-dev gnuplot-nox dataset-fashion-mnist libopenblas-openmp-dev libdnnl-dev
    libopenmpi-dev openmpi-bin)
# --ci: the formatting gate (clang-format 14) and git, which lists the files it checks.
ci_packages=(clang-format git)

packages=("${default_packages[@]}")
print_only=0
for arg in "$@"; do
    case "$arg" in
    --ci) packages+=("${ci_packages[@]}") ;;
    --print) print_only=1 ;;
    -h | --help)
        sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"
        exit 0
        ;;
    *)
        echo "install-deps.sh: unknown option '$arg' (try --help)" >&2
        exit 2
        ;;
    esac
done

if [[ "$print_only" == 1 ]]; then
    printf '%s\n' "${packages[@]}"
    exit 0
fi

if [[ "$(id -u)" == 0 ]]; then
    as_root=(env DEBIAN_FRONTEND=noninteractive)
elif command -v sudo >/dev/null 2>&1; then
    as_root=(sudo DEBIAN_FRONTEND=noninteractive)
else
    echo "install-deps.sh: apt-get needs root: run this script as root, or install sudo" >&2
    exit 1
fi

set -x
"${as_root[@]}" apt-get update
"${as_root[@]}" apt-get install -y --no-install-recommends "${packages[@]}"
