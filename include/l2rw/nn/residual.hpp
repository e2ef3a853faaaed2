// l2rw/nn/residual.hpp — residual blocks: BasicBlock (ResNet for CIFAR) and WideBlock (WRN).
#pragma once

#include <memory>

#include "activation.hpp"
#include "batchnorm.hpp"
#include "conv.hpp"
#include "dropout.hpp"
#include "functional.hpp"
#include "module.hpp"

namespace l2rw::nn {

/// How a residual block maps its input onto its output when the shapes differ.
enum class Shortcut {
    identity,  // shapes must match
    pad,       // "option A": subsample and zero-pad channels, no parameters
    conv,      // "option B": 1x1 convolution with stride, then batch norm
};

/// conv3x3-BN-ReLU-conv3x3-BN, plus the shortcut, then ReLU (He et al., 2016).
template <class T, Backend B>
class BasicBlock : public Module<T, B> {
  public:
    BasicBlock(index_t in, index_t out, index_t stride, Shortcut sc, Rng& rng)
        : in_(in),
          out_(out),
          stride_(stride),
          sc_(sc),
          conv1(in, out, 3, rng, stride, 1, false),
          bn1(out, 4),
          conv2(out, out, 3, rng, 1, 1, false),
          bn2(out, 4) {
        if (sc == Shortcut::identity && (in != out || stride != 1))
            throw ValueError(
                "BasicBlock: an identity shortcut needs in == out channels and stride 1, got " +
                std::to_string(in) + " -> " + std::to_string(out) + " stride " +
                std::to_string(stride));
        if (sc == Shortcut::conv) {
            sc_conv = std::make_unique<Conv2d<T, B>>(in, out, 1, rng, stride, 0, false);
            sc_bn = std::make_unique<BatchNorm<T, B>>(out, 4);
        }
    }

    Var<T, B> forward(const Var<T, B>& x, const Context<T, B>& ctx) override {
        auto h = relu(bn1.forward(conv1.forward(x, ctx), ctx));
        h = bn2.forward(conv2.forward(h, ctx), ctx);
        Var<T, B> s = x;
        if (sc_ == Shortcut::pad)
            s = functional::shortcut_pad(x, out_, stride_);
        else if (sc_ == Shortcut::conv)
            s = sc_bn->forward(sc_conv->forward(x, ctx), ctx);
        return relu(h + s);
    }
    void visit(const std::string& prefix, const Visitor<T, B>& v) override {
        conv1.visit(join_name(prefix, "conv1"), v);
        bn1.visit(join_name(prefix, "bn1"), v);
        conv2.visit(join_name(prefix, "conv2"), v);
        bn2.visit(join_name(prefix, "bn2"), v);
        if (sc_conv) {
            sc_conv->visit(join_name(prefix, "shortcut.conv"), v);
            sc_bn->visit(join_name(prefix, "shortcut.bn"), v);
        }
    }
    [[nodiscard]] std::string type_name() const override { return "BasicBlock"; }

  private:
    index_t in_, out_, stride_;
    Shortcut sc_;

  public:
    Conv2d<T, B> conv1;
    BatchNorm<T, B> bn1;
    Conv2d<T, B> conv2;
    BatchNorm<T, B> bn2;
    std::unique_ptr<Conv2d<T, B>> sc_conv;
    std::unique_ptr<BatchNorm<T, B>> sc_bn;
};

/// Pre-activation wide block (Zagoruyko & Komodakis, 2016):
/// BN-ReLU-conv3x3-BN-ReLU-dropout-conv3x3, plus the input or a 1x1 conv of it.
template <class T, Backend B>
class WideBlock : public Module<T, B> {
  public:
    WideBlock(index_t in, index_t out, index_t stride, double dropout, Rng& rng)
        : bn1(in, 4),
          conv1(in, out, 3, rng, stride, 1, false),
          bn2(out, 4),
          drop(dropout),
          conv2(out, out, 3, rng, 1, 1, false) {
        if (in != out || stride != 1)
            sc_conv = std::make_unique<Conv2d<T, B>>(in, out, 1, rng, stride, 0, false);
    }
    Var<T, B> forward(const Var<T, B>& x, const Context<T, B>& ctx) override {
        auto a = relu(bn1.forward(x, ctx));
        auto h = conv1.forward(a, ctx);
        h = conv2.forward(drop.forward(relu(bn2.forward(h, ctx)), ctx), ctx);
        return h + (sc_conv ? sc_conv->forward(a, ctx) : x);
    }
    void visit(const std::string& prefix, const Visitor<T, B>& v) override {
        bn1.visit(join_name(prefix, "bn1"), v);
        conv1.visit(join_name(prefix, "conv1"), v);
        bn2.visit(join_name(prefix, "bn2"), v);
        conv2.visit(join_name(prefix, "conv2"), v);
        if (sc_conv) sc_conv->visit(join_name(prefix, "shortcut"), v);
    }
    [[nodiscard]] std::string type_name() const override { return "WideBlock"; }

    BatchNorm<T, B> bn1;
    Conv2d<T, B> conv1;
    BatchNorm<T, B> bn2;
    Dropout<T, B> drop;
    Conv2d<T, B> conv2;
    std::unique_ptr<Conv2d<T, B>> sc_conv;
};

}  // namespace l2rw::nn
