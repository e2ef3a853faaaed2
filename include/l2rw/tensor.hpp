// l2rw/tensor.hpp — Tensor<T, Backend>: a shape and a shared, contiguous row-major buffer.
//
// Copies of a Tensor share the buffer (like a shared_ptr); `clone()` makes a deep copy.
// Operations on Tensors allocate their result; in-place updates go through `data()`.
//
// Every buffer has a version counter, shared by all the Tensors that view it (as torch's
// `_version`): the mutable `data()` — the one door to writing a buffer — counts one write.
// The tape notes the version of each value it keeps, and grad() refuses to run a rule whose
// values were overwritten since they were recorded.
//
// An integer tensor (labels, indices) also remembers the range of its values for the
// version it was computed at, so that checking labels against a class count reads them on
// the host once per batch, not once per op (on a device every read is a synchronisation):
// from_host notes the range while the values are on the host; a write forgets it.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "backend/concept.hpp"
#include "backend/kernels.hpp"
#include "config.hpp"
#include "error.hpp"
#include "random.hpp"
#include "shape.hpp"

namespace l2rw {

template <class T, Backend B>
class Tensor {
  public:
    using value_type = T;
    using backend = B;
    using buffer_type = typename B::template buffer<T>;

    /// An empty rank-1 tensor of zero elements.
    Tensor() : Tensor(Shape{0}) {}

    /// Uninitialised storage of the given shape: every element must be written before it is read.
    explicit Tensor(const Shape& shape)
        : shape_(shape), buf_(std::make_shared<Storage>(B::template allocate<T>(shape.numel()))) {}

    static Tensor zeros(const Shape& s) { return full(s, T(0)); }
    static Tensor ones(const Shape& s) { return full(s, T(1)); }
    static Tensor full(const Shape& s, T v) {
        Tensor t(s);
        B::for_each(t.numel(), kernel::Map<T, kernel::Fill<T>>{t.data(), t.data(), {v}});
        return t;
    }
    static Tensor scalar(T v) { return full(Shape{}, v); }

    /// Copies `host` (row-major, shape.numel() values) into a new tensor.
    static Tensor from_host(const Shape& s, std::span<const T> host) {
        if (static_cast<index_t>(host.size()) != s.numel())
            throw ShapeError("Tensor::from_host: shape " + s.str() + " holds " +
                             std::to_string(s.numel()) + " values but " +
                             std::to_string(host.size()) + " were given");
        Tensor t(s);
        B::from_host(host.data(), t.buf_->buffer);
        if constexpr (std::is_integral_v<T>) {
            if (!host.empty()) {
                const auto [lo, hi] = std::minmax_element(host.begin(), host.end());
                t.note_range(*lo, *hi);
            }
        }
        return t;
    }
    static Tensor from_host(const Shape& s, const std::vector<T>& host) {
        return from_host(s, std::span<const T>(host));
    }

    /// Seeded N(mean, stddev²) entries; the same seed gives the same tensor on every backend.
    static Tensor randn(const Shape& s, std::uint64_t seed, double mean = 0.0,
                        double stddev = 1.0) {
        Rng rng(seed);
        std::vector<T> h(static_cast<std::size_t>(s.numel()));
        for (auto& v : h) v = static_cast<T>(rng.normal(mean, stddev));
        return from_host(s, h);
    }
    /// Seeded U[lo, hi) entries.
    static Tensor uniform(const Shape& s, std::uint64_t seed, double lo = 0.0, double hi = 1.0) {
        Rng rng(seed);
        std::vector<T> h(static_cast<std::size_t>(s.numel()));
        for (auto& v : h) v = static_cast<T>(rng.uniform(lo, hi));
        return from_host(s, h);
    }

    [[nodiscard]] std::vector<T> to_host() const {
        std::vector<T> h(static_cast<std::size_t>(numel()));
        B::to_host(buf_->buffer, h.data());
        return h;
    }
    /// The single value of a one-element tensor.
    [[nodiscard]] T item() const {
        if (numel() != 1)
            throw ShapeError("Tensor::item: tensor of shape " + shape_.str() +
                             " is not one element");
        return to_host()[0];
    }

    [[nodiscard]] const Shape& shape() const { return shape_; }
    [[nodiscard]] int rank() const { return shape_.rank(); }
    [[nodiscard]] index_t numel() const { return shape_.numel(); }
    [[nodiscard]] index_t dim(int axis) const { return shape_.dim(axis); }

    /// The buffer, to write: counts one write in the buffer's version.
    [[nodiscard]] T* data() {
        buf_->version.fetch_add(1, std::memory_order_relaxed);
        return B::data(buf_->buffer);
    }
    [[nodiscard]] const T* data() const { return B::data(buf_->buffer); }
    /// How many times the buffer was handed out for writing (shared by every view of it).
    [[nodiscard]] std::uint64_t version() const {
        return buf_->version.load(std::memory_order_relaxed);
    }

    /// Same buffer, another shape of the same size.
    [[nodiscard]] Tensor reshape(const Shape& s) const {
        if (s.numel() != numel())
            throw ShapeError("reshape: cannot view " + shape_.str() + " as " + s.str());
        Tensor t = *this;
        t.shape_ = s;
        return t;
    }
    /// A deep copy with a buffer of its own.
    [[nodiscard]] Tensor clone() const {
        Tensor t(shape_);
        B::copy(data(), numel(), t.data());
        return t;
    }
    /// Copies `src` (same shape) into this tensor's buffer, in place.
    void assign(const Tensor& src) {
        if (!(src.shape() == shape_))
            throw ShapeError("Tensor::assign: shape " + src.shape().str() + " into " +
                             shape_.str());
        B::copy(src.data(), numel(), data());
    }
    /// True when both share one buffer.
    [[nodiscard]] bool shares_buffer_with(const Tensor& o) const { return buf_ == o.buf_; }

    /// The smallest and largest value, if known for the buffer as it is now (no host read).
    [[nodiscard]] std::optional<std::pair<T, T>> known_range()
        const requires std::is_integral_v<T> {
        auto& n = buf_->note;
        std::lock_guard<std::mutex> lock(n.mu);
        if (n.known && n.version == version()) return std::pair{n.lo, n.hi};
        return std::nullopt;
    }
    /// The smallest and largest value (nullopt when empty): the noted range, or one read of
    /// the buffer on the host, then noted.
    [[nodiscard]] std::optional<std::pair<T, T>> value_range()
        const requires std::is_integral_v<T> {
        if (numel() == 0) return std::nullopt;
        if (auto r = known_range()) return r;
        const std::uint64_t v = version();
        const auto h = to_host();
        const auto [lo, hi] = std::minmax_element(h.begin(), h.end());
        note_range(*lo, *hi, v);
        return std::pair{*lo, *hi};
    }
    /// Notes that every value of the buffer, as it is now, lies in [lo, hi]: for code that
    /// fills an integer tensor from values of a known range (a slice of noted labels).
    void note_range(T lo, T hi) const requires std::is_integral_v<T> {
        note_range(lo, hi, version());
    }

  private:
    void note_range(T lo, T hi, std::uint64_t at) const requires std::is_integral_v<T> {
        auto& n = buf_->note;
        std::lock_guard<std::mutex> lock(n.mu);
        n.known = true;
        n.version = at;
        n.lo = lo;
        n.hi = hi;
    }

    struct RangeNote {  // what known_range() reads; guarded by mu
        std::mutex mu;
        bool known = false;
        std::uint64_t version = 0;
        T lo{}, hi{};
    };
    struct NoNote {};
    struct Storage {
        explicit Storage(buffer_type b) : buffer(std::move(b)) {}
        buffer_type buffer;
        std::atomic<std::uint64_t> version{0};
        [[no_unique_address]] std::conditional_t<std::is_integral_v<T>, RangeNote, NoNote> note;
    };
    Shape shape_;
    std::shared_ptr<Storage> buf_;
};

/// Integer labels and indices live in tensors of index_t on the same backend.
template <Backend B>
using IndexTensor = Tensor<index_t, B>;

}  // namespace l2rw
