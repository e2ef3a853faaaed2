// tests/onednn/test_onednn.cpp — the float convolutions that l2rw::onednn sends to oneDNN,
// against the Eigen kernels they replace (onednn::set_enabled(false) in the same binary):
//
//   each pass (forward with and without bias, input gradient, weight gradient, and both
//     gradients in one call) over strides, paddings, one input channel, batch 1, 1x1
//     pointwise and strided 1x1, and windows that do not divide the input: equal to float
//     rounding (1e-5 of the largest value); both in one call give the bits of the two passes
//   the Var ops of the family and so their VJPs: a LeNet and a ResNet-8 l2rw step (the meta
//     step differentiates through all three passes) give the same weights and gradients
//   at a fixed thread count, two runs are bitwise equal; double never goes to oneDNN (its
//     results are bitwise those of the Eigen kernels)
//   a oneDNN error becomes an l2rw::Error that names the pass and its geometry
//
// The double-precision FD checks of the family (first and second order) are in
// tests/test_kernels.cpp; oneDNN takes float only.
//
// Mutations seen caught here (each undone): the forward's bias left out of the primitive
// (fails the forward check); the input gradient left in oneDNN's blocked layout, its reorder
// back skipped (the padded layout overruns the output: the test crashes).
#include <vector>

#include "../small_run.hpp"

using namespace l2rw;
using l2rw::testing::small_l2rw_run;

namespace {

/// Runs f with oneDNN on or off and puts the setting back.
template <class F>
auto with_onednn(bool on, F&& f) {
    const bool old = onednn::enabled();
    onednn::set_enabled(on);
    auto r = f();
    onednn::set_enabled(old);
    return r;
}

/// A fixed thread count for a test case: ctest runs other tests beside this one, and the
/// adaptive team would otherwise change the count (and so the primitive) between two runs.
struct FixedThreads {
    bool adaptive = adaptive_threads();
    FixedThreads() { set_adaptive_threads(false); }
    ~FixedThreads() { set_adaptive_threads(adaptive); }
};

/// max |a - b| / max |b|.
double rel_diff(const std::vector<float>& a, const std::vector<float>& b) {
    REQUIRE(a.size() == b.size());
    double d = 0, m = 0;
    for (std::size_t i = 0; i < a.size(); ++i) {
        d = std::max(d, std::abs(double(a[i]) - double(b[i])));
        m = std::max(m, std::abs(double(b[i])));
    }
    return m > 0 ? d / m : d;
}

struct Geometry {
    index_t n, c, h, w, o, k, stride, pad;
};

}  // namespace

TEST_CASE("onednn: each pass of the convolution family equals the Eigen kernels in float") {
    const FixedThreads fixed;
    const std::vector<Geometry> cases = {
        {4, 3, 9, 9, 8, 3, 1, 1},     // a ResNet's 3x3, same padding
        {3, 8, 10, 10, 16, 3, 2, 1},  // strided
        {2, 1, 12, 12, 6, 5, 1, 0},   // one input channel (LeNet's first layer)
        {1, 5, 7, 7, 4, 3, 1, 0},     // batch 1, no padding
        {3, 16, 6, 6, 32, 1, 1, 0},   // 1x1 pointwise
        {2, 16, 8, 8, 32, 1, 2, 0},   // strided 1x1 (a projection shortcut)
        {2, 6, 11, 8, 7, 3, 2, 2},    // windows that do not divide the input, wide padding
    };
    for (const auto& c : cases) {
        INFO("n ", c.n, " c ", c.c, " h ", c.h, " w ", c.w, " o ", c.o, " k ", c.k, " stride ",
             c.stride, " pad ", c.pad);
        const auto x = Tensor<float, Cpu>::randn({c.n, c.c, c.h, c.w}, 1);
        const auto w = Tensor<float, Cpu>::randn({c.o, c.c, c.k, c.k}, 2);
        const auto b = Tensor<float, Cpu>::randn({c.o}, 3);
        const auto g = nn::functional::detail::window(x.shape(), c.k, c.k, c.stride, c.pad, "test");
        const auto gy = Tensor<float, Cpu>::randn({c.n, c.o, g.oh, g.ow}, 4);
        using V = Var<float, Cpu>;
        auto fwd = [&] {
            return nn::functional::conv2d_geo(V(x), V(w), V(b), g).value().to_host();
        };
        auto fwd0 = [&] {
            return nn::functional::conv2d_geo(V(x), V(w), V(), g).value().to_host();
        };
        auto gx = [&] {
            return nn::functional::conv2d_input_grad(V(gy), V(w), g).value().to_host();
        };
        auto gw = [&] {
            return nn::functional::conv2d_weight_grad(V(x), V(gy), g).value().to_host();
        };
        CHECK(rel_diff(with_onednn(true, fwd), with_onednn(false, fwd)) < 1e-5);
        CHECK(rel_diff(with_onednn(true, fwd0), with_onednn(false, fwd0)) < 1e-5);
        CHECK(rel_diff(with_onednn(true, gx), with_onednn(false, gx)) < 1e-5);
        CHECK(rel_diff(with_onednn(true, gw), with_onednn(false, gw)) < 1e-5);
        // The same call twice at the same thread count: the same bits.
        CHECK(with_onednn(true, gw) == with_onednn(true, gw));
        // Both gradients in one call (the forward's first-order VJP, gy reordered once): the
        // bits of the two separate passes.
        auto both = [&] {
            std::vector<float> gxb(x.numel()), gwb(w.numel());
            conv::backward<float, Cpu>(x.data(), gy.data(), w.data(), gxb.data(), gwb.data(), c.o,
                                       g);
            gxb.insert(gxb.end(), gwb.begin(), gwb.end());
            return gxb;
        };
        auto apart = [&] {
            auto r = gx();
            const auto rw = gw();
            r.insert(r.end(), rw.begin(), rw.end());
            return r;
        };
        CHECK(with_onednn(true, both) == with_onednn(true, apart));
        CHECK(rel_diff(with_onednn(true, both), with_onednn(false, apart)) < 1e-5);
    }
}

namespace {

double rel_diff(const std::vector<double>& a, const std::vector<double>& b) {
    REQUIRE(a.size() == b.size());
    double d = 0, m = 0;
    for (std::size_t i = 0; i < a.size(); ++i) {
        d = std::max(d, std::abs(a[i] - b[i]));
        m = std::max(m, std::abs(b[i]));
    }
    return d / m;
}

}  // namespace

TEST_CASE("onednn: a LeNet and a ResNet-8 l2rw step agree with the Eigen kernels") {
    const FixedThreads fixed;
    for (bool resnet : {false, true}) {
        CAPTURE(resnet);
        const auto on = with_onednn(true, [&] { return small_l2rw_run<float>(resnet, 1); });
        const auto off = with_onednn(false, [&] { return small_l2rw_run<float>(resnet, 1); });
        CHECK(rel_diff(on, off) < 1e-4);
        CHECK(on == with_onednn(true, [&] { return small_l2rw_run<float>(resnet, 1); }));
        // double stays on the Eigen kernels whatever the switch says
        CHECK(with_onednn(true, [&] { return small_l2rw_run<double>(resnet, 1); }) ==
              with_onednn(false, [&] { return small_l2rw_run<double>(resnet, 1); }));
    }
}

TEST_CASE("onednn: a oneDNN failure is an l2rw::Error naming the pass and its geometry") {
    const onednn::detail::Key k{onednn::Pass::weight_grad, false, 2, 4, 3, 9, 9, 8, 3, 3, 2, 1};
    const l2rw::Error e =
        onednn::detail::failure(k, "cannot build", dnnl::error(dnnl_unimplemented, "no kernel"));
    const std::string what = e.what();
    CHECK(what.find("conv2d_weight_grad on oneDNN: cannot build its primitive for input [4, 3, "
                    "9, 9], 8 filters 3x3, stride 2, padding 1, 2 thread(s): no kernel") !=
          std::string::npos);
    CHECK(what.find("set_enabled(false)") != std::string::npos);
}
