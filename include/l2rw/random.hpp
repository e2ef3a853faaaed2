// l2rw/random.hpp — portable seeded random numbers.
//
// std::normal_distribution and std::uniform_real_distribution are implementation-defined,
// so the same seed could give different numbers on another standard library. l2rw draws
// from std::mt19937_64 (fully specified by the standard) and converts bits itself, so a
// seed means the same numbers everywhere and on every backend.
#pragma once

#include <cmath>
#include <cstdint>
#include <random>

#include "error.hpp"

namespace l2rw {

class Rng {
  public:
    explicit Rng(std::uint64_t seed = 0) : gen_(seed) {}

    /// Uniform in [0, 1) with 53 random bits.
    double uniform() { return static_cast<double>(gen_() >> 11) * 0x1.0p-53; }
    double uniform(double lo, double hi) { return lo + (hi - lo) * uniform(); }

    /// Standard normal by the Box–Muller transform.
    double normal() {
        if (has_spare_) {
            has_spare_ = false;
            return spare_;
        }
        double u1 = uniform();
        while (u1 <= 0.0) u1 = uniform();
        const double u2 = uniform();
        const double r = std::sqrt(-2.0 * std::log(u1));
        constexpr double two_pi = 6.283185307179586476925286766559;
        spare_ = r * std::sin(two_pi * u2);
        has_spare_ = true;
        return r * std::cos(two_pi * u2);
    }
    double normal(double mean, double stddev) { return mean + stddev * normal(); }

    /// Uniform integer in [0, n); n = 0 (an empty range) is a ValueError.
    std::uint64_t below(std::uint64_t n) {
        if (n == 0) throw ValueError("Rng::below: the range [0, 0) is empty");
        // Lemire's nearly divisionless method would be faster; rejection keeps it exact.
        const std::uint64_t limit = UINT64_MAX - UINT64_MAX % n;
        std::uint64_t x;
        do x = gen_();
        while (x >= limit);
        return x % n;
    }

    std::mt19937_64& engine() { return gen_; }

  private:
    std::mt19937_64 gen_;
    double spare_ = 0.0;
    bool has_spare_ = false;
};

}  // namespace l2rw
