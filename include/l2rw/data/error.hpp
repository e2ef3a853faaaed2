// l2rw/data/error.hpp — the exception the data loaders throw.
#pragma once

#include "../error.hpp"

namespace l2rw {

/// A data file that cannot be read or does not hold what its format promises. The message
/// names the file and, whenever the problem sits at a place in the file, the byte offset
/// ("<path>: truncated: expected 60008 bytes, file ends at byte 5000").
class DataError : public Error {
  public:
    using Error::Error;
};

namespace data {
using l2rw::DataError;
}  // namespace data

}  // namespace l2rw
