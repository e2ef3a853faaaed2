// tests/mpi/mpi_testing.hpp — what the data-parallel tests share: the world communicator,
// checks whose outcome every rank agrees on (so that one rank's failed check cannot leave the
// others waiting in a collective), and the worst relative difference of two vectors.
#pragma once

#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <l2rw/dist/mpi.hpp>
#include <vector>

namespace l2rw::testing {

extern const dist::Mpi* world_comm;

inline const dist::Mpi& world() { return *world_comm; }

/// Whether `ok` holds on every rank (one all-reduce; every rank gets the same answer).
inline bool on_every_rank(bool ok) {
    double bad = ok ? 0.0 : 1.0;
    world().all_reduce_host_sum(&bad, 1);
    return bad == 0.0;
}

/// Whether every rank holds exactly (bitwise) the values rank 0 holds.
inline bool same_on_every_rank(const std::vector<double>& v) {
    double n = static_cast<double>(v.size());
    world().broadcast_host(&n, sizeof n, 0);
    if (!on_every_rank(n == static_cast<double>(v.size()))) return false;
    std::vector<double> first(v);
    world().broadcast_host(first.data(), first.size() * sizeof(double), 0);
    return on_every_rank(std::memcmp(first.data(), v.data(), v.size() * sizeof(double)) == 0);
}

/// max |a − b| / max(max |a|, tiny): the worst difference relative to a's scale.
inline double relative_difference(const std::vector<double>& a, const std::vector<double>& b) {
    if (a.size() != b.size()) return INFINITY;
    double diff = 0, scale = 1e-300;
    for (std::size_t i = 0; i < a.size(); ++i) {
        diff = std::max(diff, std::abs(a[i] - b[i]));
        scale = std::max(scale, std::abs(a[i]));
    }
    return diff / scale;
}

}  // namespace l2rw::testing
