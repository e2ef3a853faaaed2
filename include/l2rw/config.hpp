// l2rw/config.hpp — portable annotations and the index type shared by every floor.
#pragma once

#include <cstdint>

#if defined(__CUDACC__)
#define L2RW_HD __host__ __device__
#else
#define L2RW_HD
#endif

namespace l2rw {

/// Signed index type for sizes, shapes and element offsets.
using index_t = std::int64_t;

/// Largest rank a tensor may have.
inline constexpr int max_rank = 4;

}  // namespace l2rw
