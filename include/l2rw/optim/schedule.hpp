// l2rw/optim/schedule.hpp — learning-rate schedules.
//
// PiecewiseConstant(base, decay_steps, factor) or PiecewiseConstant::from_values(boundaries,
// values). The rate is values[k] on steps [boundaries[k-1], boundaries[k]), i.e. a
// decay takes effect AT its boundary step (as torch.optim.lr_scheduler.MultiStepLR does with
// milestones): with base 0.1, decay steps {100, 200} and factor 0.1, steps 0..99 use 0.1,
// steps 100..199 use 0.01, steps 200.. use 0.001. The paper's schedules are of this kind.
#pragma once

#include <cmath>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "../error.hpp"

namespace l2rw::optim {

class PiecewiseConstant {
  public:
    /// `base_lr` until the first decay step; each decay step multiplies the rate by `factor`.
    PiecewiseConstant(double base_lr, std::vector<std::int64_t> decay_steps, double factor = 0.1)
        : boundaries_(std::move(decay_steps)) {
        check_value("base_lr", base_lr);
        if (!std::isfinite(factor) || factor <= 0)
            throw ValueError("PiecewiseConstant: factor must be finite and > 0, got " +
                             std::to_string(factor));
        check_boundaries();
        values_.push_back(base_lr);
        for (std::size_t i = 0; i < boundaries_.size(); ++i)
            values_.push_back(values_.back() * factor);
    }

    /// Explicit rates: values[0] before boundaries[0], values[k] from boundaries[k-1] on;
    /// one value more than there are boundaries.
    static PiecewiseConstant from_values(std::vector<std::int64_t> boundaries,
                                         std::vector<double> values) {
        return PiecewiseConstant(std::move(boundaries), std::move(values), Explicit{});
    }

    /// The rate at (0-based) step `step`.
    [[nodiscard]] double lr(std::int64_t step) const {
        if (step < 0)
            throw ValueError("PiecewiseConstant::lr: negative step " + std::to_string(step));
        std::size_t k = 0;
        while (k < boundaries_.size() && step >= boundaries_[k]) ++k;
        return values_[k];
    }
    [[nodiscard]] double operator()(std::int64_t step) const { return lr(step); }

    [[nodiscard]] const std::vector<std::int64_t>& boundaries() const { return boundaries_; }
    [[nodiscard]] const std::vector<double>& values() const { return values_; }

  private:
    struct Explicit {};
    PiecewiseConstant(std::vector<std::int64_t> boundaries, std::vector<double> values, Explicit)
        : boundaries_(std::move(boundaries)), values_(std::move(values)) {
        if (values_.size() != boundaries_.size() + 1)
            throw ValueError("PiecewiseConstant: " + std::to_string(boundaries_.size()) +
                             " boundaries need " + std::to_string(boundaries_.size() + 1) +
                             " values, got " + std::to_string(values_.size()));
        for (std::size_t i = 0; i < values_.size(); ++i)
            check_value(("values[" + std::to_string(i) + "]").c_str(), values_[i]);
        check_boundaries();
    }

    static void check_value(const char* what, double v) {
        if (!std::isfinite(v) || v < 0)
            throw ValueError(std::string("PiecewiseConstant: ") + what +
                             " must be finite and >= 0, got " + std::to_string(v));
    }
    void check_boundaries() const {
        for (std::size_t i = 0; i < boundaries_.size(); ++i) {
            if (boundaries_[i] <= 0)
                throw ValueError("PiecewiseConstant: decay step " + std::to_string(boundaries_[i]) +
                                 " must be > 0");
            if (i > 0 && boundaries_[i] <= boundaries_[i - 1])
                throw ValueError(
                    "PiecewiseConstant: decay steps must be strictly increasing, got " +
                    std::to_string(boundaries_[i - 1]) + " then " + std::to_string(boundaries_[i]));
        }
    }

    std::vector<std::int64_t> boundaries_;
    std::vector<double> values_;
};

}  // namespace l2rw::optim
