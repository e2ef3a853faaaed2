// tests/test_geometry.cpp — every op that takes a geometry (im2col, col2im, the conv family,
// max-pool gather and scatter, average pool and its adjoint, the residual shortcut) checks it
// against its operands: a mismatch is a ShapeError, never an access outside a buffer.
#include <string>
#include <vector>

#include "testing.hpp"

using namespace l2rw;
using namespace l2rw::testing;
namespace F = l2rw::nn::functional;

TEST_CASE_TEMPLATE("kernels: every op that takes a geometry checks it against its operands", B,
                   L2RW_BACKENDS) {
    // Issue 11 item 11. The kernels index by the geometry alone. Broken (kernel::check for
    // Window2d and for ShortcutGeo made to return at once, then average pooling's padding
    // test; undone): every check below failed with "no exception thrown" and the ops read
    // and wrote outside their buffers. The wrong
    // operands here are larger than the geometry wants, so the broken run read garbage
    // instead of crashing.
    using V = VarD<B>;
    auto z = [](const Shape& s) { return V(TensorD<B>::zeros(s)); };
    auto idx = [](index_t n) { return IndexTensor<B>::zeros(Shape{n}); };
    auto fails = [](auto f, std::initializer_list<std::string_view> parts, const char* what) {
        check_throws_mentioning<ShapeError>(f, parts, what);
    };
    const Shape xs{2, 3, 6, 6};
    const auto g = F::detail::window(xs, 3, 3, 1, 1, "test");  // 6x6 out
    const std::string geo = kernel::str(g);
    const Shape channels{2, 4, 6, 6}, spatial{2, 3, 7, 6}, batch{3, 3, 6, 6};
    for (const Shape& bad : {channels, spatial, batch}) {
        CAPTURE(bad.str());
        fails([&] { (void)F::im2col(z(bad), g); }, {"im2col", geo, bad.str(), "[2, 3, 6, 6]"},
              "im2col");
        fails(
            [&] {
                (void)F::conv2d_geo(z(bad), z({5, 3, 3, 3}), V(), g);
            },
            {"conv2d", "input", bad.str()}, "conv2d_geo");
        fails(
            [&] {
                (void)F::conv2d_weight_grad(z(bad), z({2, 5, 6, 6}), g);
            },
            {"conv2d_weight_grad", "input", bad.str()}, "conv2d_weight_grad");
    }
    fails(
        [&] {
            (void)F::col2im(z({72, 28}), g);
        },
        {"col2im", geo, "[72, 28]", "[72, 27]"}, "col2im, wide rows");
    fails([&] { (void)F::col2im(z({73, 27}), g); }, {"col2im", "[73, 27]"}, "col2im, rows");
    fails(
        [&] {
            (void)F::conv2d_geo(z(xs), z({5, 4, 3, 3}), V(), g);
        },
        {"conv2d", "weights", "[5, 4, 3, 3]", "[5, 3, 3, 3]"}, "conv2d_geo weights");
    fails(
        [&] {
            (void)F::conv2d_input_grad(z({2, 5, 7, 6}), z({5, 3, 3, 3}), g);
        },
        {"conv2d_input_grad", "output gradient", "[2, 5, 7, 6]", "[2, 5, 6, 6]"},
        "conv2d_input_grad");
    fails(
        [&] {
            (void)F::conv2d_input_grad(z({2, 5, 6, 6}), z({5, 3, 3, 4}), g);
        },
        {"conv2d_input_grad", "weights", "[5, 3, 3, 4]"}, "conv2d_input_grad weights");
    fails(
        [&] {
            (void)F::conv2d_weight_grad(z(xs), z({3, 5, 6, 6}), g);
        },
        {"conv2d_weight_grad", "output gradient", "[3, 5, 6, 6]"}, "weight_grad gradient");
    // A geometry that is not a sweep of its own input (an output one row too tall).
    auto tall = g;
    tall.oh = 7;
    fails([&] { (void)F::im2col(z(xs), tall); }, {"im2col", "not a window sweep", "to 7x6"},
          "inconsistent geometry");

    // Pooling: 2x2 windows at stride 2, out 3x3, 54 winners.
    const auto p = F::detail::window(xs, 2, 2, 2, 0, "test");
    for (const Shape& bad : {channels, spatial, batch}) {
        CAPTURE(bad.str());
        fails([&] { (void)F::maxpool_gather(z(bad), idx(54), p); },
              {"maxpool_gather", "input", bad.str()}, "maxpool_gather");
        fails([&] { (void)F::avgpool_geo(z(bad), p); }, {"avgpool_geo", bad.str()}, "avgpool_geo");
    }
    fails([&] { (void)F::maxpool_gather(z(xs), idx(55), p); },
          {"maxpool_gather", "winner indices", "[55]", "[54]"}, "maxpool_gather winners");
    fails(
        [&] {
            (void)F::maxpool_scatter(z({2, 3, 3, 4}), idx(54), p);
        },
        {"maxpool_scatter", "gradient", "[2, 3, 3, 4]", "[2, 3, 3, 3]"}, "maxpool_scatter");
    fails(
        [&] {
            (void)F::maxpool_scatter(z({2, 3, 3, 3}), idx(55), p);
        },
        {"maxpool_scatter", "winner indices", "[55]"}, "maxpool_scatter winners");
    fails(
        [&] {
            (void)F::avgpool_adjoint(z({2, 4, 3, 3}), p);
        },
        {"avgpool_adjoint", "gradient", "[2, 4, 3, 3]"}, "avgpool_adjoint");
    fails([&] { (void)F::avgpool_geo(z(xs), g); }, {"avgpool_geo", "padded"},
          "avgpool_geo with padding");

    // The residual shortcut: [2, 3, 6, 6] to 7 channels at stride 2, out [2, 7, 3, 3].
    const auto s = kernel::shortcut(xs, 7, 2, "test");
    fails([&] { (void)F::shortcut_pad_geo(z(channels), s); },
          {"shortcut_pad_geo", "input", "[2, 4, 6, 6]", kernel::str(s)}, "shortcut_pad_geo");
    fails(
        [&] {
            (void)F::shortcut_pad_adjoint(z({2, 7, 3, 4}), s);
        },
        {"shortcut_pad_adjoint", "gradient", "[2, 7, 3, 4]", "[2, 7, 3, 3]"},
        "shortcut_pad_adjoint");
    auto shifted = s;
    shifted.before = 5;  // channels 5..7 of 7: past the end
    fails(
        [&] {
            (void)F::shortcut_pad_adjoint(z({2, 7, 3, 3}), shifted);
        },
        {"shortcut_pad_adjoint", "not a shortcut"}, "inconsistent shortcut");
    // An empty axis subsamples to an empty one. Broken (the old (H - 1) / stride + 1, undone):
    // the output had a row, read from the empty input's null buffer (the case crashed, SIGSEGV).
    CHECK(F::shortcut_pad(z({1, 1, 0, 3}), 3, 2).value().shape().str() == "[1, 3, 0, 2]");
}
