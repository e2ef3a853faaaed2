// l2rw/data/dataset.hpp — a labelled image dataset on the host, and batches of it as tensors.
//
//   Dataset ds = load_fashion_mnist(dir);          // [n, 1, 28, 28] floats in [0, 1]
//   Dataset part = ds.subset({3, 1, 4});             // rows 3, 1 and 4, in that order
//   auto b = to_batch<float, Cpu>(ds, idx);          // b.x [k, c, h, w], b.y [k]
#pragma once

#include <algorithm>
#include <cstddef>
#include <initializer_list>
#include <numeric>
#include <span>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "../backend/concept.hpp"
#include "../config.hpp"
#include "../error.hpp"
#include "../tensor.hpp"

namespace l2rw::data {

/// N labelled images of C×H×W floats, kept on the host.
///
/// `noisy` and `clean_labels` are empty until label noise is applied (see transforms.hpp);
/// after that `labels` holds the observed (possibly corrupted) labels, `clean_labels` the
/// true ones and `noisy[i] == (labels[i] != clean_labels[i])`.
/// `origin[i]` is the row of example i in the file(s) it was loaded from; subset() and
/// every transform carry it along, so two datasets cut from one source can be checked
/// for overlap.
struct Dataset {
    std::vector<float> images;    ///< n×c×h×w, row-major; uint8 sources are scaled to [0, 1]
    std::vector<index_t> labels;  ///< n labels in [0, classes)
    index_t n = 0, c = 0, h = 0, w = 0;
    index_t classes = 0;
    std::vector<bool> noisy;            ///< empty, or n flags: label i was corrupted
    std::vector<index_t> clean_labels;  ///< empty, or n labels before the noise
    std::vector<index_t> origin;        ///< n rows of the source file(s)

    [[nodiscard]] index_t size() const { return n; }
    [[nodiscard]] index_t image_size() const { return c * h * w; }
    [[nodiscard]] bool has_noise() const { return !noisy.empty(); }

    /// The true label of example i (the observed one when no noise was applied).
    [[nodiscard]] index_t clean_label(index_t i) const {
        return clean_labels.empty() ? labels[static_cast<std::size_t>(i)]
                                    : clean_labels[static_cast<std::size_t>(i)];
    }
    [[nodiscard]] bool is_noisy(index_t i) const {
        return !noisy.empty() && noisy[static_cast<std::size_t>(i)];
    }

    [[nodiscard]] std::span<const float> image(index_t i) const {
        return {images.data() + i * image_size(), static_cast<std::size_t>(image_size())};
    }
    [[nodiscard]] std::span<float> image(index_t i) {
        return {images.data() + i * image_size(), static_cast<std::size_t>(image_size())};
    }

    /// Number of examples per (observed) label, `classes` entries.
    [[nodiscard]] std::vector<index_t> class_counts() const {
        std::vector<index_t> counts(static_cast<std::size_t>(std::max<index_t>(classes, 0)), 0);
        for (index_t y : labels)
            if (y >= 0 && y < classes) ++counts[static_cast<std::size_t>(y)];
        return counts;
    }

    /// The examples at `indices`, in that order (an index may repeat).
    /// Throws ValueError for an index outside [0, n).
    [[nodiscard]] Dataset subset(std::span<const index_t> indices) const {
        Dataset out;
        out.n = static_cast<index_t>(indices.size());
        out.c = c;
        out.h = h;
        out.w = w;
        out.classes = classes;
        const auto sz = static_cast<std::size_t>(image_size());
        out.images.resize(checked_mul<ValueError>(indices.size(), sz, "Dataset::subset"));
        out.labels.reserve(indices.size());
        out.origin.reserve(indices.size());
        if (has_noise()) {
            out.noisy.reserve(indices.size());
            out.clean_labels.reserve(indices.size());
        }
        for (std::size_t k = 0; k < indices.size(); ++k) {
            const index_t i = indices[k];
            if (i < 0 || i >= n)
                throw ValueError("Dataset::subset: index " + std::to_string(i) + " (position " +
                                 std::to_string(k) + ") is outside [0, " + std::to_string(n) + ")");
            const auto ui = static_cast<std::size_t>(i);
            std::copy_n(images.begin() + static_cast<std::ptrdiff_t>(ui * sz), sz,
                        out.images.begin() + static_cast<std::ptrdiff_t>(k * sz));
            out.labels.push_back(labels[ui]);
            out.origin.push_back(origin.empty() ? i : origin[ui]);
            if (has_noise()) {
                out.noisy.push_back(noisy[ui]);
                out.clean_labels.push_back(clean_labels[ui]);
            }
        }
        return out;
    }
    [[nodiscard]] Dataset subset(std::initializer_list<index_t> indices) const {
        return subset(std::span<const index_t>(indices.begin(), indices.size()));
    }
    [[nodiscard]] Dataset subset(const std::vector<index_t>& indices) const {
        return subset(std::span<const index_t>(indices));
    }

    /// Throws ValueError unless every field agrees with n, c, h, w and classes.
    void validate(const char* where = "Dataset") const {
        const std::string w0 = where;
        auto fail = [&](const std::string& what) { throw ValueError(w0 + ": " + what); };
        if (n < 0 || c < 0 || h < 0 || w < 0) fail("negative size");
        if (static_cast<index_t>(images.size()) != n * image_size())
            fail(std::to_string(images.size()) + " pixel values for " + std::to_string(n) +
                 " images of " + std::to_string(c) + "x" + std::to_string(h) + "x" +
                 std::to_string(w));
        if (static_cast<index_t>(labels.size()) != n)
            fail(std::to_string(labels.size()) + " labels for " + std::to_string(n) + " images");
        if (static_cast<index_t>(origin.size()) != n)
            fail(std::to_string(origin.size()) + " origin rows for " + std::to_string(n) +
                 " images");
        if (noisy.size() != clean_labels.size() ||
            (!noisy.empty() && static_cast<index_t>(noisy.size()) != n))
            fail("noise flags and clean labels must both be empty or both hold n entries");
        for (std::size_t i = 0; i < labels.size(); ++i)
            if (labels[i] < 0 || labels[i] >= classes)
                fail("label " + std::to_string(labels[i]) + " of example " + std::to_string(i) +
                     " is outside [0, " + std::to_string(classes) + ")");
    }
};

/// Rows 0, 1, ..., n - 1.
inline std::vector<index_t> iota_indices(index_t n) {
    std::vector<index_t> v(static_cast<std::size_t>(std::max<index_t>(n, 0)));
    std::iota(v.begin(), v.end(), index_t{0});
    return v;
}

/// A batch as tensors — inputs x [k, ...] and labels y [k] (observed, possibly corrupted) —
/// plus host-side bookkeeping. The one batch type of the library: to_batch() fills every
/// field; a batch made by hand needs only x and y ({x, y} or {x, y, noisy}). The noise flags
/// are for reporting only (the weight mass on flipped labels), never used for the weights.
template <class T, Backend B>
struct Batch {
    Tensor<T, B> x;
    IndexTensor<B> y;
    std::vector<bool> noisy;            ///< k flags (label i is known to be flipped), or empty
    std::vector<index_t> indices;       ///< dataset rows of the k examples (to_batch)
    std::vector<index_t> clean_labels;  ///< true labels (to_batch; equal to y without noise)

    Batch() = default;
    Batch(Tensor<T, B> inputs, IndexTensor<B> labels, std::vector<bool> noise_flags = {})
        : x(std::move(inputs)), y(std::move(labels)), noisy(std::move(noise_flags)) {}

    /// The number of examples, k.
    [[nodiscard]] index_t size() const { return y.numel(); }
};

/// The examples at `indices` as tensors on backend B. Throws ValueError for a bad index.
template <class T, Backend B>
Batch<T, B> to_batch(const Dataset& ds, std::span<const index_t> indices) {
    const auto k = static_cast<index_t>(indices.size());
    const auto sz = static_cast<std::size_t>(ds.image_size());
    std::vector<T> x(checked_mul<ValueError>(indices.size(), sz, "to_batch"));
    std::vector<index_t> y(indices.size());
    Batch<T, B> b;
    b.indices.assign(indices.begin(), indices.end());
    b.clean_labels.resize(indices.size());
    b.noisy.assign(indices.size(), false);
    for (std::size_t j = 0; j < indices.size(); ++j) {
        const index_t i = indices[j];
        if (i < 0 || i >= ds.n)
            throw ValueError("to_batch: index " + std::to_string(i) + " (position " +
                             std::to_string(j) + ") is outside [0, " + std::to_string(ds.n) + ")");
        const auto img = ds.image(i);
        std::transform(img.begin(), img.end(), x.begin() + static_cast<std::ptrdiff_t>(j * sz),
                       [](float v) { return static_cast<T>(v); });
        y[j] = ds.labels[static_cast<std::size_t>(i)];
        b.clean_labels[j] = ds.clean_label(i);
        b.noisy[j] = ds.is_noisy(i);
    }
    b.x = Tensor<T, B>::from_host(Shape{k, ds.c, ds.h, ds.w}, x);
    b.y = IndexTensor<B>::from_host(Shape{k}, y);
    return b;
}
template <class T, Backend B>
Batch<T, B> to_batch(const Dataset& ds, const std::vector<index_t>& indices) {
    return to_batch<T, B>(ds, std::span<const index_t>(indices));
}
/// Rows [begin, end) of a batch (its x and y on the backend, its host-side fields alike):
/// the part of a batch that one rank of a data-parallel step takes (see data::shard_of).
template <class T, Backend B>
Batch<T, B> slice(const Batch<T, B>& b, index_t begin, index_t end) {
    const index_t k = b.size();
    if (begin < 0 || end < begin || end > k)
        throw ValueError("slice: rows [" + std::to_string(begin) + ", " + std::to_string(end) +
                         ") of a batch of " + std::to_string(k));
    if (b.x.rank() < 1 || b.x.dim(0) != k)
        throw ShapeError("slice: a batch with inputs " + b.x.shape().str() + " and " +
                         std::to_string(k) + " labels");
    auto dims = b.x.shape().dims();
    dims[0] = end - begin;
    const index_t per = k > 0 ? b.x.numel() / k : 0;
    Batch<T, B> out;
    out.x = Tensor<T, B>(Shape::from_range(dims.begin(), dims.begin() + b.x.rank()));
    B::copy(b.x.data() + begin * per, (end - begin) * per, out.x.data());
    out.y = IndexTensor<B>(Shape{end - begin});
    B::copy(b.y.data() + begin, end - begin, out.y.data());
    if (const auto r = b.y.known_range()) out.y.note_range(r->first, r->second);
    auto part = [&](const auto& v) {
        using V = std::decay_t<decltype(v)>;
        return v.empty() ? V{} : V(v.begin() + begin, v.begin() + end);
    };
    out.noisy = part(b.noisy);
    out.indices = part(b.indices);
    out.clean_labels = part(b.clean_labels);
    return out;
}

/// The whole dataset as one batch.
template <class T, Backend B>
Batch<T, B> to_batch(const Dataset& ds) {
    return to_batch<T, B>(ds, iota_indices(ds.n));
}

}  // namespace l2rw::data
