// l2rw/dist/collective.hpp — the collective steps a data-parallel computation is built of,
// on any Communicator:
//
//   agree(c, n, local)        runs this rank's `local` part (which may throw) and sums its n
//                             values over ranks; when `local` threw on any rank, every rank
//                             throws the same DistributedError naming that rank, instead of
//                             leaving the others waiting in the next collective;
//   all_reduce_sum(c, ts, s)  a list of tensors summed over ranks (and scaled by s) as one
//                             message, the values packed end to end;
//   all_reduce(x, c)          the sum over ranks as a differentiable op: its VJP and its JVP
//                             are all-reduces too, so a lookahead through it is global.
//
// On one rank every one of them is the identity (agree runs `local` and lets its exceptions
// through unchanged), so that code written with them serves single-process users unchanged.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <span>
#include <string>
#include <typeinfo>
#include <vector>

#include "../autodiff/var.hpp"
#include "../error.hpp"
#include "../tensor.hpp"
#include "communicator.hpp"

namespace l2rw::dist {

namespace detail {

/// The l2rw type of an exception, for the message every rank gets.
inline const char* kind(const std::exception& e) {
    if (dynamic_cast<const ShapeError*>(&e)) return "ShapeError";
    if (dynamic_cast<const NumericError*>(&e)) return "NumericError";
    if (dynamic_cast<const ValueError*>(&e)) return "ValueError";
    if (dynamic_cast<const TapeError*>(&e)) return "TapeError";
    if (dynamic_cast<const DistributedError*>(&e)) return "DistributedError";
    if (dynamic_cast<const Error*>(&e)) return "Error";
    return "std::exception";
}

/// Longest message a failed rank sends to the others (longer ones are cut).
inline constexpr std::size_t message_bytes = 1024;

}  // namespace detail

/// One step of a collective computation that may fail on some ranks. Every rank calls it at
/// the same point with the same `n`; `local(out)` writes this rank's contribution into `out`
/// (n doubles, zero to begin with), and agree returns the element-wise sum over ranks. When
/// `local` throws on some ranks, none returns: each throws a DistributedError naming the
/// lowest rank that failed, the type of what it threw and its message (one all-reduce of
/// n + size doubles when all is well, one broadcast more when not). On one rank `local`
/// runs as it is and its exceptions propagate unchanged.
template <class F>
std::vector<double> agree(const Communicator& c, std::size_t n, F&& local) {
    const auto P = static_cast<std::size_t>(c.size());
    if (P == 1) {
        std::vector<double> out(n, 0.0);
        local(std::span<double>(out));
        return out;
    }
    std::vector<double> buf(n + P, 0.0);
    std::string error;
    try {
        local(std::span<double>(buf.data(), n));
    } catch (const std::exception& e) {
        error = std::string(detail::kind(e)) + ": " + e.what();
    } catch (...) {
        error = "an exception that is not a std::exception";
    }
    if (!error.empty()) {
        std::fill(buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(n), 0.0);
        buf[n + static_cast<std::size_t>(c.rank())] = 1.0;
    }
    c.all_reduce_host_sum(buf.data(), buf.size());
    std::vector<int> failed;
    for (std::size_t r = 0; r < P; ++r)
        if (buf[n + r] != 0.0) failed.push_back(static_cast<int>(r));
    if (failed.empty()) {
        buf.resize(n);
        return buf;
    }
    char msg[detail::message_bytes] = {};
    if (c.rank() == failed.front())
        std::memcpy(msg, error.data(), std::min(error.size(), sizeof msg - 1));
    c.broadcast_host(msg, sizeof msg, failed.front());
    std::string others;
    for (std::size_t k = 1; k < failed.size(); ++k)
        others += (k == 1 ? " (ranks " : ", ") + std::to_string(failed[k]);
    if (!others.empty()) others += " failed too)";
    throw DistributedError(failed.front(), "rank " + std::to_string(failed.front()) + " of " +
                                               std::to_string(P) + " failed" + others + ": " +
                                               std::string(msg));
}

/// The tensors of `ts` summed over ranks and multiplied by `scale`, as new tensors (the
/// inputs are left alone: gradients may share buffers), through one all-reduce of their
/// values packed end to end. On one rank with scale 1, `ts` itself.
template <class T, Backend B>
std::vector<Tensor<T, B>> all_reduce_sum(const Communicator& c, const std::vector<Tensor<T, B>>& ts,
                                         T scale = T(1)) {
    if (c.size() == 1 && scale == T(1)) return ts;
    index_t total = 0;
    for (const auto& t : ts) total += t.numel();
    Tensor<T, B> flat(Shape{total});
    index_t at = 0;
    for (const auto& t : ts) {
        B::copy(t.data(), t.numel(), flat.data() + at);
        at += t.numel();
    }
    c.all_reduce_sum(flat.data(), static_cast<std::size_t>(total));
    if (scale != T(1))
        B::for_each(total, kernel::Map<T, kernel::MulScalar<T>>{flat.data(), flat.data(), {scale}});
    std::vector<Tensor<T, B>> out;
    out.reserve(ts.size());
    at = 0;
    for (const auto& t : ts) {
        Tensor<T, B> o(t.shape());
        B::copy(flat.data() + at, t.numel(), o.data());
        at += t.numel();
        out.push_back(std::move(o));
    }
    return out;
}

/// The sum of `x` over ranks, differentiable: its VJP sends the gradient through the same
/// all-reduce (each rank's input reaches every rank's output), and so does its JVP. Every
/// rank must record it, and differentiate through it, at the same point; `c` must outlive
/// the tape. On one rank, `x` itself.
template <class T, Backend B>
Var<T, B> all_reduce(const Var<T, B>& x, const Communicator& c) {
    if (c.size() == 1) return x;
    auto v = x.value().clone();
    c.all_reduce_sum(v.data(), static_cast<std::size_t>(v.numel()));
    const Communicator* cp = &c;
    return l2rw::detail::record<T, B>(
        l2rw::detail::keep_none, "all_reduce", std::move(v), {&x},
        [cp](l2rw::detail::VjpContext<T, B>& k) { k.gin[0] = all_reduce(k.gout, *cp); },
        [cp](const l2rw::detail::JvpContext<T, B>& k) { return all_reduce(k.tin[0], *cp); });
}

}  // namespace l2rw::dist
