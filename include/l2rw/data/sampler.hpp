// l2rw/data/sampler.hpp — index streams for training loops.
//
//   Batcher b(ds.size(), 100, /*seed=*/1);          // a fresh seeded shuffle every epoch
//   for (int step = 0; step < steps; ++step) {
//       auto batch = to_batch<float, Cpu>(ds, b.next());
//       ...
//   }
//   BalancedSampler s(ds, 100, 2);                  // Resample baseline: 50 + 50 per batch
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "../config.hpp"
#include "../error.hpp"
#include "../random.hpp"
#include "dataset.hpp"
#include "shuffle.hpp"

namespace l2rw::data {

namespace detail {

/// SplitMix64 finaliser: decorrelates the seeds of consecutive epochs.
inline std::uint64_t mix_seed(std::uint64_t seed, std::uint64_t stream) {
    std::uint64_t z = seed + 0x9e3779b97f4a7c15ull * (stream + 1);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

}  // namespace detail

/// Batches of `batch_size` indices over 0..n-1, each epoch in its own seeded random order
/// (or in order 0..n-1 with shuffle = false). Without drop_last the last batch of an epoch
/// holds the n % batch_size leftovers; with it they are skipped. The order of epoch e
/// depends only on (seed, e).
class Batcher {
  public:
    Batcher(index_t n, index_t batch_size, std::uint64_t seed, bool drop_last = false,
            bool shuffle = true)
        : n_(n), batch_(batch_size), seed_(seed), drop_last_(drop_last), shuffle_(shuffle) {
        if (n < 0) throw ValueError("Batcher: negative dataset size " + std::to_string(n));
        if (batch_size <= 0)
            throw ValueError("Batcher: batch size " + std::to_string(batch_size) +
                             " is not positive");
    }

    [[nodiscard]] index_t size() const { return n_; }
    [[nodiscard]] index_t batch_size() const { return batch_; }
    [[nodiscard]] index_t batches_per_epoch() const {
        return drop_last_ ? n_ / batch_ : (n_ + batch_ - 1) / batch_;
    }
    /// The epoch the next call of next() draws from, and that batch's number within it.
    [[nodiscard]] index_t epoch() const { return epoch_; }
    [[nodiscard]] index_t batch_in_epoch() const { return pos_; }

    /// The order of all n indices in epoch `e`.
    [[nodiscard]] std::vector<index_t> order(index_t e) const {
        if (!shuffle_) return iota_indices(n_);
        Rng rng(detail::mix_seed(seed_, static_cast<std::uint64_t>(e)));
        return random_permutation(n_, rng);
    }

    /// Every batch of epoch `e`.
    [[nodiscard]] std::vector<std::vector<index_t>> epoch_batches(index_t e) const {
        const auto ord = order(e);
        std::vector<std::vector<index_t>> out;
        for (index_t b = 0; b < batches_per_epoch(); ++b) out.push_back(slice(ord, b));
        return out;
    }

    /// The next batch, moving on to a new epoch (and a new order) after the last one.
    /// Throws ValueError when an epoch has no batch (drop_last with n < batch_size, or n = 0).
    std::vector<index_t> next() {
        if (batches_per_epoch() == 0)
            throw ValueError("Batcher::next: no batch per epoch (" + std::to_string(n_) +
                             " examples, batch size " + std::to_string(batch_) +
                             (drop_last_ ? ", drop_last)" : ")"));
        if (pos_ == batches_per_epoch()) {
            ++epoch_;
            pos_ = 0;
        }
        if (cached_epoch_ != epoch_) {
            order_ = order(epoch_);
            cached_epoch_ = epoch_;
        }
        return slice(order_, pos_++);
    }

    /// Back to the first batch of epoch `e`.
    void seek(index_t e) {
        epoch_ = e;
        pos_ = 0;
    }

  private:
    [[nodiscard]] std::vector<index_t> slice(const std::vector<index_t>& ord, index_t b) const {
        const index_t lo = b * batch_, hi = std::min(lo + batch_, n_);
        return {ord.begin() + lo, ord.begin() + hi};
    }

    index_t n_, batch_;
    std::uint64_t seed_;
    bool drop_last_, shuffle_;
    index_t epoch_ = 0, pos_ = 0, cached_epoch_ = -1;
    std::vector<index_t> order_;
};

/// The rows [begin, end) of a batch of n that rank `rank` of `ranks` takes in a data-parallel
/// step: contiguous blocks in rank order, the first n % ranks ranks one row more, so that
/// the ranks together take every row once and in order (the batch one process would take).
struct Shard {
    index_t begin = 0, end = 0;
    [[nodiscard]] index_t size() const { return end - begin; }
};

inline Shard shard_of(index_t n, int rank, int ranks) {
    if (ranks <= 0 || rank < 0 || rank >= ranks || n < 0)
        throw ValueError("shard_of: rank " + std::to_string(rank) + " of " + std::to_string(ranks) +
                         " ranks, " + std::to_string(n) + " rows");
    const index_t per = n / ranks, extra = n % ranks, r = rank;
    const index_t begin = r * per + std::min(r, extra);
    return {begin, begin + per + (r < extra ? 1 : 0)};
}

/// The elements of `rows` that shard `s` takes.
template <class V>
std::vector<V> take(const std::vector<V>& rows, const Shard& s) {
    if (s.begin < 0 || s.end < s.begin || s.end > static_cast<index_t>(rows.size()))
        throw ValueError("take: shard [" + std::to_string(s.begin) + ", " + std::to_string(s.end) +
                         ") of " + std::to_string(rows.size()) + " rows");
    return {rows.begin() + s.begin, rows.begin() + s.end};
}

/// Class-balanced batches with replacement (the Resample baseline of §4.1): every batch holds
/// batch_size / classes examples of each class, each drawn uniformly from that class's
/// examples, in shuffled order. Every class must have an example and batch_size must be a
/// multiple of the number of classes (ValueError otherwise).
class BalancedSampler {
  public:
    BalancedSampler(const std::vector<index_t>& labels, index_t classes, index_t batch_size,
                    std::uint64_t seed)
        : rows_(static_cast<std::size_t>(std::max<index_t>(classes, 0))),
          batch_(batch_size),
          rng_(seed) {
        if (classes <= 0) throw ValueError("BalancedSampler: no classes");
        if (batch_size <= 0 || batch_size % classes != 0)
            throw ValueError("BalancedSampler: batch size " + std::to_string(batch_size) +
                             " is not a positive multiple of the " + std::to_string(classes) +
                             " classes");
        for (std::size_t i = 0; i < labels.size(); ++i) {
            const index_t y = labels[i];
            if (y < 0 || y >= classes)
                throw ValueError("BalancedSampler: label " + std::to_string(y) + " of example " +
                                 std::to_string(i) + " is outside [0, " + std::to_string(classes) +
                                 ")");
            rows_[static_cast<std::size_t>(y)].push_back(static_cast<index_t>(i));
        }
        for (std::size_t k = 0; k < rows_.size(); ++k)
            if (rows_[k].empty())
                throw ValueError("BalancedSampler: class " + std::to_string(k) +
                                 " has no examples");
    }
    BalancedSampler(const Dataset& ds, index_t batch_size, std::uint64_t seed)
        : BalancedSampler(ds.labels, ds.classes, batch_size, seed) {}

    [[nodiscard]] index_t batch_size() const { return batch_; }
    [[nodiscard]] index_t classes() const { return static_cast<index_t>(rows_.size()); }

    std::vector<index_t> next() {
        const index_t per = batch_ / classes();
        std::vector<index_t> out;
        out.reserve(static_cast<std::size_t>(batch_));
        for (const auto& rows : rows_)
            for (index_t j = 0; j < per; ++j)
                out.push_back(rows[static_cast<std::size_t>(rng_.below(rows.size()))]);
        shuffle(out, rng_);
        return out;
    }

  private:
    std::vector<std::vector<index_t>> rows_;
    index_t batch_;
    Rng rng_;
};

}  // namespace l2rw::data
