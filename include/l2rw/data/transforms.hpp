// l2rw/data/transforms.hpp — the experimental set-ups of the paper on a host Dataset:
// class imbalance (§4.1), a small clean validation set, label noise (UniformFlip and
// BackgroundFlip, §4.2), per-channel normalisation and CIFAR crop-and-flip augmentation.
//
// Every random choice draws from the l2rw::Rng it is given (never from a global), so a seed
// reproduces a split on every platform. Datasets are returned in source order (ascending
// row) unless stated; use a Batcher (sampler.hpp) for a shuffled order.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "../config.hpp"
#include "../error.hpp"
#include "../random.hpp"
#include "dataset.hpp"
#include "shuffle.hpp"

namespace l2rw::data {

namespace detail {

inline index_t round_count(double ratio, index_t n) {
    return static_cast<index_t>(std::llround(ratio * static_cast<double>(n)));
}

inline void check_ratio(double r, const char* who, const char* name) {
    if (!(r >= 0.0 && r <= 1.0))
        throw ValueError(std::string(who) + ": " + name + " " + std::to_string(r) +
                         " is outside [0, 1]");
}

inline void check_class(index_t k, index_t classes, const char* who, const char* name) {
    if (k < 0 || k >= classes)
        throw ValueError(std::string(who) + ": " + name + " " + std::to_string(k) +
                         " is outside [0, " + std::to_string(classes) + ")");
}

inline void check_no_noise(const Dataset& ds, const char* who) {
    if (ds.has_noise())
        throw ValueError(std::string(who) +
                         ": the dataset already carries label noise; apply noise once, last");
}

/// Rows of `ds` grouped by true (clean) label: rows[k] lists the examples of class k in order.
inline std::vector<std::vector<index_t>> rows_by_class(const Dataset& ds) {
    std::vector<std::vector<index_t>> rows(static_cast<std::size_t>(ds.classes));
    for (index_t i = 0; i < ds.n; ++i) {
        const index_t y = ds.clean_label(i);
        if (y < 0 || y >= ds.classes)
            throw ValueError("label " + std::to_string(y) + " of example " + std::to_string(i) +
                             " is outside [0, " + std::to_string(ds.classes) + ")");
        rows[static_cast<std::size_t>(y)].push_back(i);
    }
    return rows;
}

}  // namespace detail

// ---- class imbalance (§4.1) -----------------------------------------------------------------

/// Label given to the minority class by imbalanced_binary().
inline constexpr index_t minority_label = 0;
/// Label given to the majority class by imbalanced_binary() (the positive class: in the
/// authors' released code class 9 is "class_1" and dominates, 4 is "class_0").
inline constexpr index_t majority_label = 1;

/// A two-class task cut from `ds`: exactly round(total · p_major) examples of `class_major`
/// (relabelled majority_label = 1) and the rest of `total` from `class_minor` (relabelled
/// minority_label = 0), each drawn at random without replacement; classes = 2. The paper
/// uses class_major = 9, class_minor = 4, total = 5000. Throws ValueError when either class
/// has too few examples, or when `ds` already carries label noise.
inline Dataset imbalanced_binary(const Dataset& ds, index_t class_major, index_t class_minor,
                                 index_t total, double p_major, Rng& rng) {
    constexpr const char* who = "imbalanced_binary";
    detail::check_no_noise(ds, who);
    detail::check_ratio(p_major, who, "p_major");
    detail::check_class(class_major, ds.classes, who, "class_major");
    detail::check_class(class_minor, ds.classes, who, "class_minor");
    if (class_major == class_minor)
        throw ValueError(std::string(who) + ": class_major and class_minor are both " +
                         std::to_string(class_major));
    if (total < 0) throw ValueError(std::string(who) + ": negative total " + std::to_string(total));
    const index_t n_major = detail::round_count(p_major, total), n_minor = total - n_major;
    std::vector<index_t> major_rows, minor_rows;
    for (index_t i = 0; i < ds.n; ++i) {
        const index_t y = ds.labels[static_cast<std::size_t>(i)];
        if (y == class_major)
            major_rows.push_back(i);
        else if (y == class_minor)
            minor_rows.push_back(i);
    }
    auto need = [&](const std::vector<index_t>& rows, index_t k, index_t cls) {
        if (k > static_cast<index_t>(rows.size()))
            throw ValueError(std::string(who) + ": needs " + std::to_string(k) +
                             " examples of class " + std::to_string(cls) + " but the dataset has " +
                             std::to_string(rows.size()));
    };
    need(major_rows, n_major, class_major);
    need(minor_rows, n_minor, class_minor);
    std::vector<index_t> rows = choose(std::move(major_rows), n_major, rng, who);
    const std::vector<index_t> minor = choose(std::move(minor_rows), n_minor, rng, who);
    rows.insert(rows.end(), minor.begin(), minor.end());
    std::sort(rows.begin(), rows.end());
    Dataset out = ds.subset(rows);
    for (auto& y : out.labels) y = y == class_major ? majority_label : minority_label;
    out.classes = 2;
    return out;
}

// ---- clean validation split -----------------------------------------------------------------

/// Validation size given per class (the paper's BackgroundFlip set-up: 10 per class).
struct PerClass {
    index_t count = 10;
};
/// Validation size given in total, spread over the classes as evenly as possible (the
/// paper's UniformFlip set-up: 1000 images).
struct Total {
    index_t count = 0;
};

/// A training remainder and a disjoint clean validation set.
struct TrainValSplit {
    Dataset train;  ///< every example not in `val`, in source order, noise (if any) kept
    Dataset val;    ///< stratified clean examples, in source order, true labels, no noise
};

namespace detail {

inline TrainValSplit split_by_counts(const Dataset& ds, const std::vector<index_t>& per_class,
                                     Rng& rng, const std::vector<std::vector<index_t>>& rows) {
    std::vector<index_t> val_rows;
    for (std::size_t k = 0; k < rows.size(); ++k) {
        if (per_class[k] > static_cast<index_t>(rows[k].size()))
            throw ValueError("split_clean_validation: needs " + std::to_string(per_class[k]) +
                             " validation examples of class " + std::to_string(k) +
                             " but the dataset has " + std::to_string(rows[k].size()));
        const auto picked = choose(rows[k], per_class[k], rng, "split_clean_validation");
        val_rows.insert(val_rows.end(), picked.begin(), picked.end());
    }
    std::sort(val_rows.begin(), val_rows.end());
    std::vector<index_t> train_rows;
    train_rows.reserve(static_cast<std::size_t>(ds.n) - val_rows.size());
    std::size_t v = 0;
    for (index_t i = 0; i < ds.n; ++i) {
        if (v < val_rows.size() && val_rows[v] == i) {
            ++v;
            continue;
        }
        train_rows.push_back(i);
    }
    TrainValSplit out{ds.subset(train_rows), ds.subset(val_rows)};
    if (out.val.has_noise()) {  // the validation set is clean: restore the true labels
        out.val.labels = out.val.clean_labels;
        out.val.noisy.clear();
        out.val.clean_labels.clear();
    }
    return out;
}

}  // namespace detail

/// Splits off `per_class.count` examples of every class (by true label), chosen at random,
/// as a clean validation set; the rest is the training set. Throws ValueError when a class
/// has too few examples.
inline TrainValSplit split_clean_validation(const Dataset& ds, PerClass per_class, Rng& rng) {
    if (per_class.count < 0)
        throw ValueError("split_clean_validation: negative count per class " +
                         std::to_string(per_class.count));
    const auto rows = detail::rows_by_class(ds);
    return detail::split_by_counts(ds, std::vector<index_t>(rows.size(), per_class.count), rng,
                                   rows);
}

/// Splits off `total.count` examples as a clean validation set, stratified by true label:
/// every class gets total / classes and the remaining total % classes go, one each, to
/// classes chosen at random among those with examples to spare. Throws ValueError when the
/// classes cannot supply them.
inline TrainValSplit split_clean_validation(const Dataset& ds, Total total, Rng& rng) {
    if (total.count < 0 || total.count > ds.n)
        throw ValueError("split_clean_validation: total " + std::to_string(total.count) +
                         " is outside [0, " + std::to_string(ds.n) + "]");
    if (ds.classes <= 0) throw ValueError("split_clean_validation: dataset has no classes");
    const auto rows = detail::rows_by_class(ds);
    const index_t base = total.count / ds.classes, extra = total.count % ds.classes;
    std::vector<index_t> counts(rows.size(), base), spare;
    for (std::size_t k = 0; k < rows.size(); ++k)
        if (static_cast<index_t>(rows[k].size()) > base) spare.push_back(static_cast<index_t>(k));
    if (extra > static_cast<index_t>(spare.size()))
        throw ValueError("split_clean_validation: cannot spread " + std::to_string(total.count) +
                         " examples over " + std::to_string(ds.classes) + " classes: only " +
                         std::to_string(spare.size()) + " classes have more than " +
                         std::to_string(base) + " examples");
    for (index_t k : choose(spare, extra, rng, "split_clean_validation"))
        ++counts[static_cast<std::size_t>(k)];
    return detail::split_by_counts(ds, counts, rng, rows);
}

/// The paper's default: 10 clean validation examples per class.
inline TrainValSplit split_clean_validation(const Dataset& ds, Rng& rng) {
    return split_clean_validation(ds, PerClass{10}, rng);
}

// ---- label noise (§4.2) ---------------------------------------------------------------------

namespace detail {

inline void start_noise(Dataset& ds) {
    ds.clean_labels = ds.labels;
    ds.noisy.assign(static_cast<std::size_t>(ds.n), false);
}

}  // namespace detail

/// UniformFlip: exactly round(ratio · n) examples, chosen at random, get a label drawn
/// uniformly from the classes - 1 *other* classes (never their own). Sets `noisy` and
/// `clean_labels`. Throws ValueError for a ratio outside [0, 1], fewer than 2 classes, or a
/// dataset that already carries noise.
inline Dataset uniform_flip(Dataset ds, double ratio, Rng& rng) {
    constexpr const char* who = "uniform_flip";
    detail::check_no_noise(ds, who);
    detail::check_ratio(ratio, who, "ratio");
    if (ds.classes < 2)
        throw ValueError(std::string(who) + ": needs at least 2 classes, dataset has " +
                         std::to_string(ds.classes));
    const index_t k = detail::round_count(ratio, ds.n);
    detail::start_noise(ds);
    for (index_t i : choose(iota_indices(ds.n), k, rng, who)) {
        const auto ui = static_cast<std::size_t>(i);
        const index_t old = ds.labels[ui];
        auto y = static_cast<index_t>(rng.below(static_cast<std::uint64_t>(ds.classes - 1)));
        if (y >= old) ++y;  // skip the true class: the others stay equally likely
        ds.labels[ui] = y;
        ds.noisy[ui] = true;
    }
    return ds;
}

/// BackgroundFlip: exactly round(ratio · n) examples (n counts the whole dataset), chosen at
/// random among those *not* of `background_class`, are relabelled `background_class`.
/// Sets `noisy` and `clean_labels`. Throws ValueError when there are too few
/// non-background examples, for a ratio outside [0, 1], or when noise was already applied.
/// (The paper uses background classes 0, 1, 3, 5, 7 on CIFAR-10.)
inline Dataset background_flip(Dataset ds, double ratio, index_t background_class, Rng& rng) {
    constexpr const char* who = "background_flip";
    detail::check_no_noise(ds, who);
    detail::check_ratio(ratio, who, "ratio");
    detail::check_class(background_class, ds.classes, who, "background_class");
    const index_t k = detail::round_count(ratio, ds.n);
    std::vector<index_t> pool;
    for (index_t i = 0; i < ds.n; ++i)
        if (ds.labels[static_cast<std::size_t>(i)] != background_class) pool.push_back(i);
    if (k > static_cast<index_t>(pool.size()))
        throw ValueError(std::string(who) + ": ratio " + std::to_string(ratio) + " asks for " +
                         std::to_string(k) + " flips but only " + std::to_string(pool.size()) +
                         " examples are not of background class " +
                         std::to_string(background_class));
    detail::start_noise(ds);
    for (index_t i : choose(std::move(pool), k, rng, who)) {
        ds.labels[static_cast<std::size_t>(i)] = background_class;
        ds.noisy[static_cast<std::size_t>(i)] = true;
    }
    return ds;
}

// ---- normalisation --------------------------------------------------------------------------

/// Mean and (population) standard deviation of every channel.
struct ChannelStats {
    std::vector<double> mean;
    std::vector<double> stddev;
};

/// Per-channel mean and standard deviation over every image and pixel of `ds`.
inline ChannelStats channel_stats(const Dataset& ds) {
    ChannelStats s{std::vector<double>(static_cast<std::size_t>(ds.c), 0.0),
                   std::vector<double>(static_cast<std::size_t>(ds.c), 0.0)};
    const index_t plane = ds.h * ds.w, count = ds.n * plane;
    if (count == 0) throw ValueError("channel_stats: empty dataset");
    for (index_t ch = 0; ch < ds.c; ++ch) {
        double sum = 0.0;
        for (index_t i = 0; i < ds.n; ++i) {
            const float* p = ds.images.data() + (i * ds.c + ch) * plane;
            for (index_t j = 0; j < plane; ++j) sum += p[j];
        }
        const double mean = sum / static_cast<double>(count);
        double ss = 0.0;  // second pass: no cancellation
        for (index_t i = 0; i < ds.n; ++i) {
            const float* p = ds.images.data() + (i * ds.c + ch) * plane;
            for (index_t j = 0; j < plane; ++j) ss += (p[j] - mean) * (p[j] - mean);
        }
        s.mean[static_cast<std::size_t>(ch)] = mean;
        s.stddev[static_cast<std::size_t>(ch)] = std::sqrt(ss / static_cast<double>(count));
    }
    return s;
}

/// In place: x ← (x − mean[ch]) / stddev[ch]. Normalise training and test sets with the
/// training set's statistics. Throws ValueError unless there is one positive stddev per channel.
inline void normalize(Dataset& ds, std::span<const double> mean, std::span<const double> stddev) {
    if (static_cast<index_t>(mean.size()) != ds.c || static_cast<index_t>(stddev.size()) != ds.c)
        throw ValueError("normalize: " + std::to_string(mean.size()) + " means and " +
                         std::to_string(stddev.size()) + " standard deviations for " +
                         std::to_string(ds.c) + " channels");
    for (std::size_t ch = 0; ch < stddev.size(); ++ch)
        if (!(stddev[ch] > 0.0))
            throw ValueError("normalize: standard deviation " + std::to_string(stddev[ch]) +
                             " of channel " + std::to_string(ch) + " is not positive");
    const index_t plane = ds.h * ds.w;
    for (index_t i = 0; i < ds.n; ++i)
        for (index_t ch = 0; ch < ds.c; ++ch) {
            const auto m = static_cast<float>(mean[static_cast<std::size_t>(ch)]);
            const auto inv = static_cast<float>(1.0 / stddev[static_cast<std::size_t>(ch)]);
            float* p = ds.images.data() + (i * ds.c + ch) * plane;
            for (index_t j = 0; j < plane; ++j) p[j] = (p[j] - m) * inv;
        }
}
inline void normalize(Dataset& ds, const ChannelStats& s) { normalize(ds, s.mean, s.stddev); }

// ---- CIFAR augmentation ---------------------------------------------------------------------

/// In place, per image of n [c, h, w] images: pad every side by `pad` pixels of `fill`, crop
/// an h×w window at a random offset (each of dy, dx uniform in [0, 2·pad]), then with
/// probability 1/2 mirror it left–right when `flip` is on. Draws dy, dx, then (with flip)
/// one coin per image, in image order. pad = 0 and flip = false leave the images unchanged.
/// Fill 0 is black in [0, 1] data and the mean colour in normalised data.
inline void augment_crop_flip(std::span<float> images, index_t n, index_t c, index_t h, index_t w,
                              Rng& rng, index_t pad = 4, bool flip = true, float fill = 0.0f) {
    if (pad < 0) throw ValueError("augment_crop_flip: negative pad " + std::to_string(pad));
    if (n < 0 || c < 0 || h < 0 || w < 0 || static_cast<index_t>(images.size()) != n * c * h * w)
        throw ValueError("augment_crop_flip: " + std::to_string(images.size()) + " values for " +
                         std::to_string(n) + " images of " + std::to_string(c) + "x" +
                         std::to_string(h) + "x" + std::to_string(w));
    std::vector<float> src(static_cast<std::size_t>(c * h * w));
    for (index_t i = 0; i < n; ++i) {
        const auto dy =
            static_cast<index_t>(rng.below(static_cast<std::uint64_t>(2 * pad + 1))) - pad;
        const auto dx =
            static_cast<index_t>(rng.below(static_cast<std::uint64_t>(2 * pad + 1))) - pad;
        const bool mirror = flip && rng.below(2) == 1;
        if (dy == 0 && dx == 0 && !mirror) continue;
        float* img = images.data() + i * c * h * w;
        std::copy(img, img + c * h * w, src.begin());
        for (index_t ch = 0; ch < c; ++ch)
            for (index_t y = 0; y < h; ++y)
                for (index_t x = 0; x < w; ++x) {
                    const index_t sy = y + dy, sx = (mirror ? w - 1 - x : x) + dx;
                    img[(ch * h + y) * w + x] =
                        (sy >= 0 && sy < h && sx >= 0 && sx < w)
                            ? src[static_cast<std::size_t>((ch * h + sy) * w + sx)]
                            : fill;
                }
    }
}
/// augment_crop_flip on every image of `ds` (typically a batch made by Dataset::subset).
inline void augment_crop_flip(Dataset& ds, Rng& rng, index_t pad = 4, bool flip = true,
                              float fill = 0.0f) {
    augment_crop_flip(std::span<float>(ds.images), ds.n, ds.c, ds.h, ds.w, rng, pad, flip, fill);
}

}  // namespace l2rw::data
