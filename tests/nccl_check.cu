// tests/nccl_check.cu — dist::Nccl built by nvcc with the data-parallel step on Thrust<CUDA>:
// CI compiles and links it on machines without a GPU (there the program says so and exits
// successfully). With a GPU it runs one rank: the NCCL collectives on device and host
// memory, then reweighted LeNet steps whose collectives go through NCCL.
#include <cuda_runtime.h>

#include <cmath>
#include <cstdio>
#include <l2rw/backend/thrust.hpp>
#include <l2rw/dist/nccl.hpp>
#include <l2rw/meta.hpp>
#include <l2rw/nn.hpp>
#include <vector>

using namespace l2rw;
using B = Thrust<CUDA>;
using Model = nn::Sequential<float, B>;

namespace {
int failures = 0;
void check(bool ok, const char* what) {
    std::printf("nccl_check: %s: %s\n", what, ok ? "ok" : "FAILED");
    failures += !ok;
}
}  // namespace

int main() {
    int devices = 0;
    const cudaError_t err = cudaGetDeviceCount(&devices);
    if (err != cudaSuccess || devices == 0) {
        std::printf("nccl_check: no CUDA device found (%s): dist::Nccl is compiled, not run\n",
                    err != cudaSuccess ? cudaGetErrorString(err) : "0 devices");
        return 0;
    }
    try {
        dist::Nccl comm(dist::Nccl::unique_id(), 0, 1);
        auto t = Tensor<float, B>::full(Shape{1000}, 1.5f);
        comm.all_reduce_sum(t.data(), 1000);
        check(t.to_host()[999] == 1.5f, "all_reduce_sum on device memory (1 rank)");
        double h[3] = {1, 2, 3};
        comm.all_reduce_host_sum(h, 3);
        check(h[2] == 3.0, "all_reduce_host_sum");
        char text[8] = "nccl";
        comm.broadcast_host(text, sizeof text, 0);
        check(text[0] == 'n', "broadcast_host");

        auto model = nn::lenet<float, B>({1, 28, 10}, 1);
        optim::SGD<float, B> opt({.lr = 0.01, .momentum = 0.9});
        meta::OnlineReweighter<Model> rw(*model, {}, meta::default_loss<float, B>, &comm);
        std::vector<index_t> y(100);
        for (std::size_t i = 0; i < y.size(); ++i) y[i] = static_cast<index_t>(i % 10);
        const meta::Batch<float, B> tb{Tensor<float, B>::randn(Shape{100, 1, 28, 28}, 2),
                                       IndexTensor<B>::from_host(Shape{100}, y)};
        const meta::Batch<float, B> vb{
            Tensor<float, B>::randn(Shape{20, 1, 28, 28}, 3),
            IndexTensor<B>::from_host(Shape{20}, std::vector<index_t>(y.begin(), y.begin() + 20))};
        bool finite = true;
        for (int s = 0; s < 3; ++s) {
            const auto r = rw.step(tb, vb, opt);
            finite = finite && std::isfinite(r.validation_loss) && r.weights.size() == 100;
        }
        check(finite, "three reweighted LeNet steps through dist::Nccl");
    } catch (const std::exception& e) {
        std::printf("nccl_check: %s\n", e.what());
        return 1;
    }
    return failures ? 1 : 0;
}
