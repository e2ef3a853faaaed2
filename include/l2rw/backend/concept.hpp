// l2rw/backend/concept.hpp — what a backend must provide.
//
// A backend owns where numbers live (its buffer type) and how kernels run: `for_each`
// calls a kernel functor for every flat index, and `gemm` and the sums are where a backend
// may use a tuned library (Eigen on the CPU, cuBLAS and CUB on a device). `sum` returns to
// the host; `sum_into` leaves the sum in backend memory. A backend may also reduce segments
// itself (SegmentReductions: Thrust, with CUB on CUDA), which the axis reductions and
// batch normalisation then use instead of their one-task-per-output kernels.
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
    B::sum_into(cp, n, p);
    B::gemm(false, false, n, n, n, cp, cp, p, false);
    B::to_host(cbuf, p);
    B::from_host(cp, buf);
    B::copy(cp, n, p);
};

/// A backend with its own parallel reduction of segments (Thrust::reduce_segments).
template <class B>
concept SegmentReductions = requires(double* out) {
    B::reduce_segments(index_t{}, index_t{}, kernel::ReducedElement<double>{}, kernel::Add{}, 0.0,
                       out);
};

}  // namespace l2rw
