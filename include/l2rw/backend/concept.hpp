// l2rw/backend/concept.hpp — what a backend must provide.
//
// A backend owns where numbers live (its buffer type) and how kernels run: `for_each`
// calls a kernel functor for every flat index, and `gemm` and `sum` are the two places a
// backend may use a tuned library (Eigen on the CPU, cuBLAS/Thrust on a device).
#pragma once

#include <concepts>

#include "../config.hpp"
#include "kernels.hpp"

namespace l2rw {

template <class B>
concept Backend = requires(index_t n, typename B::template buffer<double>& buf,
                           const typename B::template buffer<double>& cbuf, const double* cp,
                           double* p) {
    { B::name() } -> std::convertible_to<const char*>;
    { B::template allocate<double>(n) } -> std::same_as<typename B::template buffer<double>>;
    { B::data(buf) } -> std::same_as<double*>;
    { B::data(cbuf) } -> std::same_as<const double*>;
    B::for_each(n, kernel::Map<double, kernel::Neg>{cp, p, {}});
    { B::sum(cp, n) } -> std::same_as<double>;
    B::gemm(false, false, n, n, n, cp, cp, p, false);
    B::to_host(cbuf, p);
    B::from_host(cp, buf);
    B::copy(cp, n, p);
};

}  // namespace l2rw
