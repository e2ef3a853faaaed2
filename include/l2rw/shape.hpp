// l2rw/shape.hpp — the shape of a contiguous row-major tensor of rank 0 to 4.
#pragma once

#include <algorithm>
#include <array>
#include <initializer_list>
#include <string>

#include "config.hpp"
#include "error.hpp"

namespace l2rw {

class Shape {
  public:
    Shape() = default;  // rank 0: a scalar
    Shape(std::initializer_list<index_t> dims) {
        if (dims.size() > static_cast<std::size_t>(max_rank))
            throw ShapeError("Shape: rank " + std::to_string(dims.size()) +
                             " exceeds the maximum " + std::to_string(max_rank));
        index_t count = 1;
        for (index_t d : dims) push(d, count);
    }
    template <class It>
    static Shape from_range(It first, It last) {
        Shape s;
        index_t count = 1;
        for (; first != last; ++first) {
            if (s.rank_ == max_rank)
                throw ShapeError("Shape: rank exceeds the maximum " + std::to_string(max_rank));
            s.push(static_cast<index_t>(*first), count);
        }
        return s;
    }

    [[nodiscard]] int rank() const { return rank_; }
    [[nodiscard]] index_t operator[](int axis) const {
        return dims_[static_cast<std::size_t>(axis)];
    }
    [[nodiscard]] index_t dim(int axis) const {
        int a = axis < 0 ? axis + rank_ : axis;
        if (a < 0 || a >= rank_)
            throw ShapeError("Shape::dim: axis " + std::to_string(axis) + " out of range for " +
                             str());
        return dims_[static_cast<std::size_t>(a)];
    }
    /// A plain product: the constructors saw that it fits (see push).
    [[nodiscard]] index_t numel() const {
        index_t n = 1;
        for (int i = 0; i < rank_; ++i) n *= dims_[static_cast<std::size_t>(i)];
        return n;
    }
    [[nodiscard]] const std::array<index_t, max_rank>& dims() const { return dims_; }

    /// The dims right-aligned into 4 slots, leading slots 1 (the broadcasting view).
    [[nodiscard]] std::array<index_t, max_rank> padded() const {
        std::array<index_t, max_rank> p{1, 1, 1, 1};
        for (int i = 0; i < rank_; ++i)
            p[static_cast<std::size_t>(max_rank - rank_ + i)] = dims_[static_cast<std::size_t>(i)];
        return p;
    }

    [[nodiscard]] std::string str() const {
        std::string s = "[";
        for (int i = 0; i < rank_; ++i) {
            if (i) s += ", ";
            s += std::to_string(dims_[static_cast<std::size_t>(i)]);
        }
        return s + "]";
    }

    friend bool operator==(const Shape& a, const Shape& b) {
        if (a.rank_ != b.rank_) return false;
        for (int i = 0; i < a.rank_; ++i)
            if (a.dims_[static_cast<std::size_t>(i)] != b.dims_[static_cast<std::size_t>(i)])
                return false;
        return true;
    }

  private:
    /// Appends dimension d. Every Shape is built here, so none holds a count that overflows:
    /// the product of the non-zero dims (`count`) must fit in index_t, which bounds every
    /// partial product too (numel, strides), however the zeros lie.
    void push(index_t d, index_t& count) {
        if (d < 0) throw ShapeError("Shape: negative dimension " + std::to_string(d));
        dims_[static_cast<std::size_t>(rank_++)] = d;
        if (d != 0) count = checked_mul<ShapeError>(count, d, [this] { return "Shape " + str(); });
    }

    std::array<index_t, max_rank> dims_{0, 0, 0, 0};
    int rank_ = 0;
};

/// NumPy broadcasting of two shapes; throws ShapeError naming `op` and both shapes.
inline Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op) {
    const int r = std::max(a.rank(), b.rank());
    auto pa = a.padded(), pb = b.padded();
    std::array<index_t, max_rank> out{};
    for (int i = 0; i < max_rank; ++i) {
        auto da = pa[static_cast<std::size_t>(i)], db = pb[static_cast<std::size_t>(i)];
        if (da != db && da != 1 && db != 1)
            throw ShapeError(std::string(op) + ": shapes " + a.str() + " and " + b.str() +
                             " cannot be broadcast together");
        out[static_cast<std::size_t>(i)] = da == 1 ? db : da;
    }
    return Shape::from_range(out.begin() + (max_rank - r), out.end());
}

/// Row-major strides of `s` seen through the 4-slot broadcasting view of `out`:
/// a slot where `s` has extent 1 but `out` does not gets stride 0.
inline std::array<index_t, max_rank> broadcast_strides(const Shape& s, const Shape& out) {
    auto ps = s.padded(), po = out.padded();
    std::array<index_t, max_rank> st{0, 0, 0, 0};
    index_t acc = 1;
    for (int i = max_rank - 1; i >= 0; --i) {
        auto k = static_cast<std::size_t>(i);
        st[k] = (ps[k] == 1 && po[k] != 1) ? 0 : acc;
        acc *= ps[k];
    }
    return st;
}

}  // namespace l2rw
