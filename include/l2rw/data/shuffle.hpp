// l2rw/data/shuffle.hpp — portable seeded shuffling and sampling of indices.
//
// std::shuffle and std::sample are implementation-defined; these draw only from
// l2rw::Rng::below, so a seed gives the same order on every standard library.
#pragma once

#include <algorithm>
#include <cstdint>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "../config.hpp"
#include "../error.hpp"
#include "../random.hpp"

namespace l2rw::data {

/// Fisher–Yates shuffle of `v` in place.
template <class U>
void shuffle(std::span<U> v, Rng& rng) {
    for (std::size_t i = v.size(); i > 1; --i) {
        const auto j = static_cast<std::size_t>(rng.below(i));
        std::swap(v[i - 1], v[j]);
    }
}
template <class U>
void shuffle(std::vector<U>& v, Rng& rng) {
    shuffle(std::span<U>(v), rng);
}

/// A uniformly random permutation of 0, 1, ..., n - 1.
inline std::vector<index_t> random_permutation(index_t n, Rng& rng) {
    std::vector<index_t> v(static_cast<std::size_t>(std::max<index_t>(n, 0)));
    for (std::size_t i = 0; i < v.size(); ++i) v[i] = static_cast<index_t>(i);
    shuffle(v, rng);
    return v;
}

/// `k` distinct elements of `pool` chosen uniformly at random (a partial Fisher–Yates), in
/// the order drawn. Throws ValueError when the pool holds fewer than k.
inline std::vector<index_t> choose(std::vector<index_t> pool, index_t k, Rng& rng,
                                   const char* who = "choose") {
    if (k < 0 || k > static_cast<index_t>(pool.size()))
        throw ValueError(std::string(who) + ": cannot choose " + std::to_string(k) + " of " +
                         std::to_string(pool.size()) + " examples");
    const auto uk = static_cast<std::size_t>(k);
    for (std::size_t i = 0; i < uk; ++i) {
        const auto j = i + static_cast<std::size_t>(rng.below(pool.size() - i));
        std::swap(pool[i], pool[j]);
    }
    pool.resize(uk);
    return pool;
}

}  // namespace l2rw::data
