// l2rw/nn/models.hpp — the paper's models, composed from the layers: MLP, LeNet, ResNet for
// CIFAR (ResNet-32) and Wide ResNet (WRN-28-10).
#pragma once

#include <memory>
#include <vector>

#include "activation.hpp"
#include "batchnorm.hpp"
#include "conv.hpp"
#include "linear.hpp"
#include "pool.hpp"
#include "residual.hpp"

namespace l2rw::nn {

/// Linear layers of the given sizes with ReLU between them (none after the last).
template <class T, Backend B>
std::shared_ptr<Sequential<T, B>> mlp(const std::vector<index_t>& sizes, std::uint64_t seed) {
    if (sizes.size() < 2) throw ValueError("mlp: want at least an input and an output size");
    Rng rng(seed);
    auto m = std::make_shared<Sequential<T, B>>();
    for (std::size_t i = 0; i + 1 < sizes.size(); ++i) {
        m->template emplace<Linear<T, B>>(sizes[i], sizes[i + 1], rng);
        if (i + 2 < sizes.size()) m->template emplace<ReLU<T, B>>();
    }
    return m;
}

struct LeNetOptions {
    index_t in_channels = 1;
    index_t image_size = 28;  // square images
    /// Outputs: 1 for the 2-class sigmoid head (binary cross-entropy), else one per class.
    index_t outputs = 10;
};

/// LeNet: conv5x5(6, pad 2)-ReLU-maxpool2 - conv5x5(16)-ReLU-maxpool2 - fc(120)-ReLU - fc(outputs).
template <class T, Backend B>
std::shared_ptr<Sequential<T, B>> lenet(const LeNetOptions& o, std::uint64_t seed) {
    const index_t s1 = o.image_size / 2;  // after conv1 (same size) and pool
    const index_t s2 = (s1 - 4) / 2;      // after conv2 (valid) and pool
    if (s1 < 5 || s2 < 1)
        throw ValueError("lenet: image size " + std::to_string(o.image_size) + " is too small");
    Rng rng(seed);
    auto m = std::make_shared<Sequential<T, B>>();
    m->template emplace<Conv2d<T, B>>(o.in_channels, 6, 5, rng, 1, 2);
    m->template emplace<ReLU<T, B>>();
    m->template emplace<MaxPool2d<T, B>>(2);
    m->template emplace<Conv2d<T, B>>(6, 16, 5, rng);
    m->template emplace<ReLU<T, B>>();
    m->template emplace<MaxPool2d<T, B>>(2);
    m->template emplace<Flatten<T, B>>();
    m->template emplace<Linear<T, B>>(16 * s2 * s2, 120, rng);
    m->template emplace<ReLU<T, B>>();
    m->template emplace<Linear<T, B>>(120, o.outputs, rng, true, init::Scheme::glorot);
    return m;
}

/// ResNet for CIFAR (He et al., 2016, §4.2) of depth 6n + 2: conv3x3(16)-BN-ReLU, three
/// stages of n BasicBlocks with 16, 32, 64 channels ("option A" shortcuts by default),
/// global average pooling, fc. Depth 32 is ResNet-32 (n = 5).
template <class T, Backend B>
std::shared_ptr<Sequential<T, B>> resnet_cifar(int depth, index_t classes, std::uint64_t seed,
                                               Shortcut shortcut = Shortcut::pad,
                                               index_t in_channels = 3) {
    if (depth < 8 || (depth - 2) % 6 != 0)
        throw ValueError("resnet_cifar: depth " + std::to_string(depth) + " is not 6n + 2");
    const int n = (depth - 2) / 6;
    Rng rng(seed);
    auto m = std::make_shared<Sequential<T, B>>();
    m->template emplace<Conv2d<T, B>>(in_channels, 16, 3, rng, 1, 1, false);
    m->template emplace<BatchNorm<T, B>>(16, 4);
    m->template emplace<ReLU<T, B>>();
    index_t in = 16;
    for (index_t width : {16, 32, 64}) {
        for (int b = 0; b < n; ++b) {
            const index_t stride = (b == 0 && width != 16) ? 2 : 1;
            const Shortcut sc = (in == width && stride == 1) ? Shortcut::identity : shortcut;
            m->template emplace<BasicBlock<T, B>>(in, width, stride, sc, rng);
            in = width;
        }
    }
    m->template emplace<GlobalAvgPool<T, B>>();
    m->template emplace<Linear<T, B>>(64, classes, rng, true, init::Scheme::glorot);
    return m;
}

template <class T, Backend B>
std::shared_ptr<Sequential<T, B>> resnet32(index_t classes, std::uint64_t seed) {
    return resnet_cifar<T, B>(32, classes, seed);
}

/// Wide ResNet WRN-depth-widen (depth 6n + 4) with dropout between the convolutions of
/// each block: conv3x3(16), three stages of n WideBlocks (16k, 32k, 64k channels),
/// BN-ReLU, global average pooling, fc.
template <class T, Backend B>
std::shared_ptr<Sequential<T, B>> wide_resnet(int depth, int widen, double dropout, index_t classes,
                                              std::uint64_t seed, index_t in_channels = 3) {
    if (depth < 10 || (depth - 4) % 6 != 0)
        throw ValueError("wide_resnet: depth " + std::to_string(depth) + " is not 6n + 4");
    const int n = (depth - 4) / 6;
    Rng rng(seed);
    auto m = std::make_shared<Sequential<T, B>>();
    m->template emplace<Conv2d<T, B>>(in_channels, 16, 3, rng, 1, 1, false);
    index_t in = 16;
    for (index_t base : {16, 32, 64}) {
        const index_t width = base * widen;
        for (int b = 0; b < n; ++b) {
            const index_t stride = (b == 0 && base != 16) ? 2 : 1;
            m->template emplace<WideBlock<T, B>>(in, width, stride, dropout, rng);
            in = width;
        }
    }
    m->template emplace<BatchNorm<T, B>>(in, 4);
    m->template emplace<ReLU<T, B>>();
    m->template emplace<GlobalAvgPool<T, B>>();
    m->template emplace<Linear<T, B>>(in, classes, rng, true, init::Scheme::glorot);
    return m;
}

template <class T, Backend B>
std::shared_ptr<Sequential<T, B>> wrn_28_10(index_t classes, std::uint64_t seed) {
    return wide_resnet<T, B>(28, 10, 0.3, classes, seed);
}

}  // namespace l2rw::nn
