// benchmarks/torch/bench_torch_meta_step.cpp — the peer of bench_meta_step.cpp in PyTorch's
// C++ API (libtorch 1.13): the same plain and reweighted steps, the same models and sizes,
// float, named `torch/<model>/...` so the two runs line up case by case.
//
// The models are written functionally (torch::nn::functional ops on a list of parameter
// tensors) so that the lookahead parameters θ' can be substituted:
//
//   plain         mean CE, torch::autograd::grad, SGD-momentum update
//   meta/general  ε leaf (zeros, requires grad), per-example CE f, g = ∇θ Σ εᵢfᵢ with
//                 create_graph, θ' = θ − αg, L_v(θ') by a functional forward at θ',
//                 u = −∂L_v/∂ε (backward-on-backward), w = max(u, 0)/Σ; then the reweighted
//                 step Σ wᵢfᵢ with SGD momentum (a skipped batch takes no step)
//   meta/exact    u = α ∂/∂ε ⟨∇θ Σ εᵢfᵢ, ∇θ L_v(θ)⟩: one first-order validation backward and
//                 one double-backward VJP (the official code's trick); then the same step
//
// BatchNorm (ResNet-32): batch statistics everywhere; the running statistics are updated by
// the plain and the reweighted steps only, as in l2rw.
//
// Threads: every case runs once per count of --torch_threads=1,2 (default 1 and 2, through
// at::set_num_threads), named `torch/thr:N/<case>` to line up with bench_meta_step's
// `thr:N/<case>`; peak_MB as there (../bench_common.hpp). Torch calls the system
// libblas.so.3: select libopenblas0-openmp's (DESIGN.md); the reference BLAS is ~30x
// slower and the pthread OpenBLAS fights torch's OpenMP threads.
#include <benchmark/benchmark.h>
#include <torch/torch.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <string>
#include <vector>

#include "../bench_common.hpp"
#include "../ratio_reporter.hpp"

namespace {

namespace F = torch::nn::functional;
using torch::Tensor;
using TensorList = std::vector<Tensor>;

constexpr int64_t classes = 10;
constexpr int64_t train_batch = 100;
constexpr double learning_rate = 0.01;
constexpr double momentum = 0.9;

enum class Arch { mlp, lenet, resnet32 };
enum class Strategy { general, exact };

const char* arch_name(Arch a) {
    switch (a) {
        case Arch::mlp:
            return "mlp";
        case Arch::lenet:
            return "lenet";
        case Arch::resnet32:
            return "resnet32";
    }
    return "?";
}

Tensor param(torch::IntArrayRef shape, int64_t fan_in) {
    return (torch::randn(shape) * std::sqrt(2.0 / static_cast<double>(fan_in)))
        .requires_grad_(true);
}
Tensor bias(int64_t n) { return torch::zeros({n}).requires_grad_(true); }

/// A model as a list of parameters (and BatchNorm running statistics) with a functional forward.
struct Net {
    Arch arch;
    TensorList params;
    TensorList running;  // mean, var per BatchNorm (ResNet-32)

    explicit Net(Arch a) : arch(a) {
        torch::manual_seed(1);
        switch (a) {
            case Arch::mlp:
                params = {param({256, 784}, 784),     bias(256),
                          param({256, 256}, 256),     bias(256),
                          param({classes, 256}, 256), bias(classes)};
                break;
            case Arch::lenet:
                params = {
                    param({6, 1, 5, 5}, 25), bias(6),   param({16, 6, 5, 5}, 150),  bias(16),
                    param({120, 400}, 400),  bias(120), param({classes, 120}, 120), bias(classes)};
                break;
            case Arch::resnet32: {
                auto conv_bn = [&](int64_t in, int64_t out) {
                    params.push_back(param({out, in, 3, 3}, in * 9));
                    params.push_back(torch::ones({out}).requires_grad_(true));
                    params.push_back(bias(out));
                    running.push_back(torch::zeros({out}));
                    running.push_back(torch::ones({out}));
                };
                conv_bn(3, 16);
                int64_t in = 16;
                for (int64_t width : {16, 32, 64})
                    for (int b = 0; b < 5; ++b) {
                        conv_bn(in, width);
                        conv_bn(width, width);
                        in = width;
                    }
                params.push_back(param({classes, 64}, 64));
                params.push_back(bias(classes));
                break;
            }
        }
    }

    std::vector<int64_t> input_shape(int64_t n) const {
        switch (arch) {
            case Arch::mlp:
                return {n, 784};
            case Arch::lenet:
                return {n, 1, 28, 28};
            case Arch::resnet32:
                return {n, 3, 32, 32};
        }
        return {n};
    }

    /// The logits at parameters `p`; `update_running` updates BatchNorm's running statistics.
    Tensor forward(const TensorList& p, const Tensor& x, bool update_running) {
        switch (arch) {
            case Arch::mlp: {
                auto h = torch::relu(F::linear(x, p[0], p[1]));
                h = torch::relu(F::linear(h, p[2], p[3]));
                return F::linear(h, p[4], p[5]);
            }
            case Arch::lenet: {
                auto h = F::max_pool2d(
                    torch::relu(F::conv2d(x, p[0], F::Conv2dFuncOptions().bias(p[1]).padding(2))),
                    F::MaxPool2dFuncOptions(2));
                h = F::max_pool2d(
                    torch::relu(F::conv2d(h, p[2], F::Conv2dFuncOptions().bias(p[3]))),
                    F::MaxPool2dFuncOptions(2));
                h = torch::relu(F::linear(h.flatten(1), p[4], p[5]));
                return F::linear(h, p[6], p[7]);
            }
            case Arch::resnet32: {
                std::size_t k = 0, r = 0;
                auto conv_bn = [&](const Tensor& in, int64_t stride) {
                    auto h = F::conv2d(in, p[k], F::Conv2dFuncOptions().stride(stride).padding(1));
                    Tensor rm, rv;
                    if (update_running) {
                        rm = running[r];
                        rv = running[r + 1];
                    }
                    h = torch::batch_norm(h, p[k + 1], p[k + 2], rm, rv, /*training=*/true, 0.1,
                                          1e-5,
                                          /*cudnn_enabled=*/false);
                    k += 3;
                    r += 2;
                    return h;
                };
                auto h = torch::relu(conv_bn(x, 1));
                int64_t in = 16;
                for (int64_t width : {16, 32, 64})
                    for (int b = 0; b < 5; ++b) {
                        const int64_t stride = (b == 0 && width != 16) ? 2 : 1;
                        auto y = torch::relu(conv_bn(h, stride));
                        y = conv_bn(y, 1);
                        Tensor s = h;
                        if (stride != 1 ||
                            in != width) {  // "option A": subsample, zero-pad channels
                            using torch::indexing::None;
                            using torch::indexing::Slice;
                            s = h.index({Slice(), Slice(), Slice(None, None, stride),
                                         Slice(None, None, stride)});
                            const int64_t extra = width - in;
                            s = F::pad(
                                s, F::PadFuncOptions({0, 0, 0, 0, extra / 2, extra - extra / 2}));
                        }
                        h = torch::relu(y + s);
                        in = width;
                    }
                return F::linear(h.mean({2, 3}), p[k], p[k + 1]);
            }
        }
        return x;
    }
};

struct Data {
    Tensor x, y;
};

Data make_batch(const Net& net, int64_t n, uint64_t seed) {
    torch::manual_seed(seed);
    return {torch::randn(net.input_shape(n)), torch::randint(classes, {n}, torch::kLong)};
}

/// θ ← θ − lr·b, b ← μb + g (PyTorch's SGD with momentum, dampening 0).
struct SGDMomentum {
    TensorList buffers;
    void step(TensorList& params, const TensorList& grads) {
        torch::NoGradGuard ng;
        if (buffers.empty())
            for (const auto& g : grads) buffers.push_back(g.clone());
        else
            for (std::size_t k = 0; k < grads.size(); ++k) buffers[k].mul_(momentum).add_(grads[k]);
        for (std::size_t k = 0; k < params.size(); ++k) params[k].add_(buffers[k], -learning_rate);
    }
};

Tensor per_example_ce(const Tensor& logits, const Tensor& y) {
    return F::cross_entropy(logits, y, F::CrossEntropyFuncOptions().reduction(torch::kNone));
}

void plain_once(Net& net, SGDMomentum& opt, const Data& tb) {
    auto loss = F::cross_entropy(net.forward(net.params, tb.x, true), tb.y);  // uniform weights 1/n
    opt.step(net.params, torch::autograd::grad({loss}, net.params));
}

/// Returns true when the batch was skipped (all weights zero).
bool meta_once(Net& net, SGDMomentum& opt, const Data& tb, const Data& vb, Strategy s) {
    const auto n = tb.y.size(0);
    auto eps = torch::zeros({n}, torch::requires_grad());
    Tensor u;
    if (s == Strategy::general) {
        auto f = per_example_ce(net.forward(net.params, tb.x, false), tb.y);
        auto g = torch::autograd::grad({(f * eps).sum()}, net.params, {}, /*retain_graph=*/true,
                                       /*create_graph=*/true);
        TensorList theta1;
        theta1.reserve(g.size());
        for (std::size_t k = 0; k < g.size(); ++k)
            theta1.push_back(net.params[k] - learning_rate * g[k]);
        auto lv = F::cross_entropy(net.forward(theta1, vb.x, false), vb.y);
        u = -torch::autograd::grad({lv}, {eps})[0];
    } else {
        auto lv = F::cross_entropy(net.forward(net.params, vb.x, false), vb.y);
        auto gv = torch::autograd::grad({lv}, net.params);
        auto f = per_example_ce(net.forward(net.params, tb.x, false), tb.y);
        auto gt = torch::autograd::grad({(f * eps).sum()}, net.params, {}, true, true);
        Tensor dot = (gt[0] * gv[0]).sum();
        for (std::size_t k = 1; k < gt.size(); ++k) dot = dot + (gt[k] * gv[k]).sum();
        u = learning_rate * torch::autograd::grad({dot}, {eps})[0];
    }
    auto w = torch::clamp_min(u.detach(), 0.0);
    const float total = w.sum().item<float>();
    if (!(total > 0.0f)) return true;
    w = w / total;
    auto f = per_example_ce(net.forward(net.params, tb.x, true), tb.y);
    opt.step(net.params, torch::autograd::grad({(f * w).sum()}, net.params));
    return false;
}

void set_examples_per_second(benchmark::State& st, int64_t n) {
    st.counters["examples/s"] =
        benchmark::Counter(static_cast<double>(n), benchmark::Counter::kIsIterationInvariantRate);
}

void plain_step(benchmark::State& st, int threads, Arch a, int64_t n) {
    at::set_num_threads(threads);
    const l2rw_bench::PeakRss peak;
    try {
        Net net(a);
        const auto tb = make_batch(net, n, 11);
        SGDMomentum opt;
        plain_once(net, opt, tb);  // warm-up
        for (auto _ : st) plain_once(net, opt, tb);
        set_examples_per_second(st, n);
        st.counters["peak_MB"] = peak.mib();
    } catch (const std::exception& e) {
        st.SkipWithError(e.what());
    }
}

void meta_step(benchmark::State& st, int threads, Arch a, Strategy s, int64_t n, int64_t m) {
    at::set_num_threads(threads);
    const l2rw_bench::PeakRss peak;
    try {
        Net net(a);
        const auto tb = make_batch(net, n, 11);
        const auto vb = make_batch(net, m, 22);
        SGDMomentum opt;
        (void)meta_once(net, opt, tb, vb, s);  // warm-up
        double skipped = 0;
        for (auto _ : st) skipped += meta_once(net, opt, tb, vb, s) ? 1.0 : 0.0;
        set_examples_per_second(st, n);
        st.counters["skipped"] = benchmark::Counter(skipped, benchmark::Counter::kAvgIterations);
        st.counters["peak_MB"] = peak.mib();
    } catch (const std::exception& e) {
        st.SkipWithError(e.what());
    }
}

void tune(benchmark::internal::Benchmark* b, Arch a) {
    b->Unit(benchmark::kMillisecond)->UseRealTime();
    if (a == Arch::resnet32)
        b->Iterations(2);
    else
        b->MinTime(1.0);
}

void register_all(const std::vector<int>& thread_counts) {
    for (int t : thread_counts)
        for (Arch a : {Arch::mlp, Arch::lenet, Arch::resnet32}) {
            const std::string model =
                "torch/thr:" + std::to_string(t) + "/" + std::string(arch_name(a));
            const std::string train = "train:" + std::to_string(train_batch);
            tune(benchmark::RegisterBenchmark(
                     (model + "/plain/" + train).c_str(),
                     [t, a](benchmark::State& st) { plain_step(st, t, a, train_batch); }),
                 a);
            for (Strategy s : {Strategy::general, Strategy::exact})
                for (int64_t m : {int64_t{100}, int64_t{10}}) {
                    const std::string name = model + "/meta/" +
                                             (s == Strategy::general ? "general" : "exact") + "/" +
                                             train + "/val:" + std::to_string(m);
                    tune(benchmark::RegisterBenchmark(name.c_str(),
                                                      [t, a, s, m](benchmark::State& st) {
                                                          meta_step(st, t, a, s, train_batch, m);
                                                      }),
                         a);
                }
        }
}

}  // namespace

int main(int argc, char** argv) {
    const std::vector<int> threads =
        l2rw_bench::thread_counts_or_exit(argc, argv, "bench_torch_meta_step", "torch_threads");
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
    register_all(threads);
    l2rw_bench::RatioReporter reporter;
    benchmark::RunSpecifiedBenchmarks(&reporter);
    benchmark::Shutdown();
    return reporter.failures() ? 1 : 0;
}
