// tests/nvcc_check.cu — the test main of the nvcc build: every tests/test_*.cpp is compiled by
// nvcc with the Thrust<CUDA> backend (see testing.hpp) and linked with this file. Without a
// CUDA device the typed tests cannot run; the program then says so and exits successfully,
// or with 1 when L2RW_REQUIRE_DEVICE is set (tests/device/check.sh sets it).
#define DOCTEST_CONFIG_IMPLEMENT
#include <cuda_runtime.h>
#include <doctest/doctest.h>

#include <cstdio>
#include <cstdlib>

int main(int argc, char** argv) {
    int devices = 0;
    const cudaError_t err = cudaGetDeviceCount(&devices);
    if (err != cudaSuccess || devices == 0) {
        std::printf("nvcc_check: no CUDA device found (%s): the Thrust<CUDA> tests are skipped\n",
                    err != cudaSuccess ? cudaGetErrorString(err) : "0 devices");
        return std::getenv("L2RW_REQUIRE_DEVICE") ? 1 : 0;
    }
    doctest::Context context(argc, argv);
    return context.run();
}
