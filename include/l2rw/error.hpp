// l2rw/error.hpp — the typed exceptions l2rw throws. Every message names the operation
// (or file) and what was wrong with it.
#pragma once

#include <stdexcept>
#include <string>

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

}  // namespace l2rw
