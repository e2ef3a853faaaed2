// l2rw/error.hpp — the typed exceptions l2rw throws, and the checked size arithmetic that
// throws them. Every message names the operation (or file) and what was wrong with it.
#pragma once

#include <cstddef>
#include <stdexcept>
#include <string>
#include <type_traits>

namespace l2rw {

/// Base of every exception thrown by l2rw.
class Error : public std::runtime_error {
  public:
    using std::runtime_error::runtime_error;
};

/// Operands whose shapes do not fit the operation ("matmul: [2, 3] and [4, 5] ...").
class ShapeError : public Error {
  public:
    using Error::Error;
};

/// Misuse of the autodiff tape: mixing tapes, differentiating a released tape, no tape.
class TapeError : public Error {
  public:
    using Error::Error;
};

/// A non-finite value where a finite one is required (a NaN loss, say).
class NumericError : public Error {
  public:
    using Error::Error;
};

/// An argument outside its domain (a label out of range, a bad axis, a negative size).
class ValueError : public Error {
  public:
    using Error::Error;
};

/// A collective step that failed on some rank (dist/collective.hpp): thrown on every rank
/// alike, naming the first rank that failed and what it threw, so that no rank is left
/// waiting for the others.
class DistributedError : public Error {
  public:
    DistributedError(int failed_rank, const std::string& what)
        : Error(what), failed_rank_(failed_rank) {}
    /// The lowest rank that failed.
    [[nodiscard]] int failed_rank() const { return failed_rank_; }

  private:
    int failed_rank_;
};

namespace detail {
template <class Who>
std::string overflow_message(const Who& who, const char* op, const std::string& a,
                             const std::string& b, std::size_t bits) {
    std::string w;
    if constexpr (std::is_invocable_v<const Who&>)
        w = who();
    else
        w = who;
    return w + ": " + a + " " + op + " " + b + " overflows " + std::to_string(bits) + " bits";
}
}  // namespace detail

/// a * b for sizes and offsets, or E (naming `who` and both operands) where the product does
/// not fit in I: never a silent wrap-around. `who` is a string or a callable returning one,
/// called only on overflow (so that a hot caller builds no message). Every size product a
/// caller can choose (shape dims, element counts to bytes, window geometries) goes through
/// here.
template <class E, class I, class Who>
[[nodiscard]] I checked_mul(I a, I b, const Who& who) {
    static_assert(std::is_integral_v<I>);
    I r{};
    if (__builtin_mul_overflow(a, b, &r)) [[unlikely]]
        throw E(detail::overflow_message(who, "*", std::to_string(a), std::to_string(b),
                                         sizeof(I) * 8));
    return r;
}
/// a + b, or E where the sum does not fit in I (as checked_mul).
template <class E, class I, class Who>
[[nodiscard]] I checked_add(I a, I b, const Who& who) {
    static_assert(std::is_integral_v<I>);
    I r{};
    if (__builtin_add_overflow(a, b, &r)) [[unlikely]]
        throw E(detail::overflow_message(who, "+", std::to_string(a), std::to_string(b),
                                         sizeof(I) * 8));
    return r;
}

}  // namespace l2rw
