// examples/weight_dump.hpp — the weights a policy gave each example over a window of steps
// (Ren et al. 2018, §4.3, Figure 3: are flipped labels pushed to weight 0?), each with its
// training-set row and whether its label was flipped: recorded during meta::train, written
// to a CSV, summed up as weight 0 taken for a noise detector (precision and recall). The
// training-set rows of a batch come from what the policy sees (PolicyInput::train.indices,
// through RowRecorder); meta::train's on_step callback then gives the weights. Not part of
// the library.
#pragma once

#include <cstdint>
#include <filesystem>
#include <l2rw/l2rw.hpp>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "common.hpp"
#include "finished_runs.hpp"

namespace examples {

/// Whether a method's weights differ between the examples of a batch (the others give every
/// example 1/n: uniform, resample, reed_soft, reed_hard).
inline bool per_example_weights(const std::string& method) {
    return method == "l2rw" || method == "random" || method == "proportion" ||
           method == "hard_mining";
}
inline const char* per_example_methods() { return "l2rw, random, proportion, hard_mining"; }

/// A policy that weighs exactly as `inner` does, and remembers the training-set rows of the
/// batch it weighed last, for meta::train's on_step callback to pair with the step's weights.
template <class Model>
class RowRecorder final : public l2rw::meta::WeightingPolicy<Model> {
  public:
    using T = typename Model::value_type;
    using B = typename Model::backend;
    using Input = l2rw::meta::PolicyInput<Model>;

    explicit RowRecorder(l2rw::meta::WeightingPolicy<Model>& inner) : inner_(inner) {}

    [[nodiscard]] std::string name() const override { return inner_.name(); }
    void prepare(const l2rw::data::Dataset& train) override { inner_.prepare(train); }
    [[nodiscard]] std::optional<std::vector<l2rw::index_t>> select(const l2rw::data::Dataset& train,
                                                                   l2rw::index_t batch_size,
                                                                   std::int64_t step) override {
        return inner_.select(train, batch_size, step);
    }
    [[nodiscard]] bool uses_validation() const override { return inner_.uses_validation(); }
    [[nodiscard]] l2rw::Var<T, B> loss(const l2rw::Var<T, B>& outputs,
                                       const l2rw::IndexTensor<B>& labels) const override {
        return inner_.loss(outputs, labels);
    }
    l2rw::meta::StepReport<T> weigh(const Input& in) override {
        rows_ = in.train.indices;
        return inner_.weigh(in);
    }
    l2rw::meta::WeightedStep<T, B> weigh_step(const Input& in, l2rw::Rng* rng) override {
        rows_ = in.train.indices;
        return inner_.weigh_step(in, rng);
    }
    /// The training-set rows of the batch weighed last, in the batch's order.
    [[nodiscard]] const std::vector<l2rw::index_t>& rows() const { return rows_; }

  private:
    l2rw::meta::WeightingPolicy<Model>& inner_;
    std::vector<l2rw::index_t> rows_;
};

/// One example's weight at one step. `weight` is as the policy reports it (a batch's weights
/// sum to 1, or are all 0 for a skipped batch); `batch` is the batch's size, so that
/// batch·weight is the weight over the batch mean (1 for uniform weights).
struct WeightRow {
    std::int64_t step = 0;
    l2rw::index_t example = 0;
    bool flipped = false;
    double weight = 0;
    l2rw::index_t batch = 0;
    [[nodiscard]] double relative() const { return static_cast<double>(batch) * weight; }
};

/// Weight 0 taken for a noise detector: how many examples got weight exactly 0, the share of
/// flipped labels among them (precision) and the share of flipped labels that got it (recall).
struct ZeroWeightStats {
    std::size_t examples = 0, flipped = 0, zero = 0, zero_flipped = 0;
    [[nodiscard]] double precision() const {
        return zero ? static_cast<double>(zero_flipped) / static_cast<double>(zero) : 0.0;
    }
    [[nodiscard]] double recall() const {
        return flipped ? static_cast<double>(zero_flipped) / static_cast<double>(flipped) : 0.0;
    }
};

inline ZeroWeightStats zero_weight_stats(const std::vector<WeightRow>& rows) {
    ZeroWeightStats s;
    for (const auto& r : rows) {
        ++s.examples;
        s.flipped += r.flipped;
        s.zero += r.weight == 0;
        s.zero_flipped += r.weight == 0 && r.flipped;
    }
    return s;
}

/// The weights of steps [first, first + batches) of one run, written to `file` (columns
/// step, example, flipped, weight). A run resumed past `first` keeps the rows of the steps
/// before its resume point from the file an earlier sitting wrote, and says so.
class WeightDump {
  public:
    WeightDump(std::filesystem::path file, std::int64_t first, std::int64_t batches)
        : file_(std::move(file)), first_(first), end_(first + batches) {}

    /// Before training steps [from, to) of the run: what to print about the dump. A run that
    /// resumes past the window's first step takes the rows of the steps before its resume
    /// point from the file of an earlier sitting, when there is one, and the note says so.
    std::string begin(std::int64_t from, std::int64_t to) {
        rows_.clear();
        recorded_ = false;
        from_ = from;
        auto steps = [](std::int64_t a, std::int64_t b) {  // [a, b)
            return b - a == 1 ? format("step %lld", static_cast<long long>(a))
                              : format("steps %lld..%lld", static_cast<long long>(a),
                                       static_cast<long long>(b - 1));
        };
        std::string note;
        if (from > first_) {
            const std::int64_t before = std::min(from, end_);
            keep_earlier(before);
            note =
                format("weight dump: this run resumes at step %lld, after --weight-dump-step %lld",
                       static_cast<long long>(from), static_cast<long long>(first_));
            note += rows_.empty()
                        ? "; not in the dump: " + steps(first_, before) + " (no rows of them in " +
                              file_.string() + ")"
                        : "; kept from the earlier sitting's " + file_.string() +
                              format(": %zu rows (", rows_.size()) + steps(first_, before) + ")";
        }
        const std::int64_t a = std::max(from, first_), b = std::min(end_, to);
        if (a < end_) {
            note += note.empty() ? "weight dump: " : "; ";
            note += b > a ? "dumping " + steps(a, b) + " to " + file_.string()
                          : "not in this sitting: " + steps(a, end_) +
                                ", past its last step (run on with --resume to dump them)";
        }
        return note;
    }
    /// Whether step `s` is one to record.
    [[nodiscard]] bool wants(std::int64_t s) const { return s >= first_ && s < end_ && s >= from_; }
    /// Step `s`'s weights of the training-set rows `rows` (flags from `train`'s noise flags).
    template <class W>
    void record(std::int64_t s, const std::vector<l2rw::index_t>& rows, const std::vector<W>& w,
                const l2rw::data::Dataset& train) {
        if (rows.size() != w.size())
            throw std::runtime_error(format("weight dump: step %lld has %zu rows for %zu weights",
                                            static_cast<long long>(s), rows.size(), w.size()));
        for (std::size_t i = 0; i < rows.size(); ++i)
            rows_.push_back({s, rows[i], train.is_noisy(rows[i]), static_cast<double>(w[i]),
                             static_cast<l2rw::index_t>(rows.size())});
        recorded_ = true;
    }
    /// Writes the file (when this sitting recorded a step).
    void write() const {
        if (!recorded_) return;
        std::vector<std::vector<std::string>> out;
        out.reserve(rows_.size());
        for (const auto& r : rows_)
            out.push_back({std::to_string(r.step), std::to_string(r.example), r.flipped ? "1" : "0",
                           format("%.9g", r.weight)});
        write_csv(file_, {"step", "example", "flipped", "weight"}, out);
    }
    [[nodiscard]] const std::vector<WeightRow>& rows() const { return rows_; }
    [[nodiscard]] const std::filesystem::path& file() const { return file_; }

  private:
    /// The rows of steps [first_, before) in the file of an earlier sitting, if any.
    void keep_earlier(std::int64_t before) {
        const auto csv = read_csv(file_);
        if (!csv) return;
        std::map<std::int64_t, l2rw::index_t> batch;  // examples per step
        for (const auto& row : csv->rows) {
            const auto num = [&](const char* col) {
                const std::string& v = row[csv->column(col)];
                std::size_t used = 0;
                double x = 0;
                try {
                    x = std::stod(v, &used);
                } catch (const std::exception&) {
                }
                if (used == 0 || used != v.size())
                    throw l2rw::CheckpointError(file_.string() + ": '" + v + "' in column " + col +
                                                " is not a number; move the file away");
                return x;
            };
            WeightRow r{static_cast<std::int64_t>(num("step")),
                        static_cast<l2rw::index_t>(num("example")), num("flipped") != 0,
                        num("weight")};
            if (r.step < first_ || r.step >= before) continue;
            rows_.push_back(r);
            ++batch[r.step];
        }
        for (auto& r : rows_) r.batch = batch[r.step];
    }

    std::filesystem::path file_;
    std::int64_t first_, end_, from_ = 0;
    std::vector<WeightRow> rows_;
    bool recorded_ = false;
};

/// The lines a program prints for a dump: its size and weight 0 as a noise detector.
inline void print_zero_weight_stats(const std::string& label, const WeightDump& dump) {
    const auto s = zero_weight_stats(dump.rows());
    std::printf(
        "%s: weights of %zu examples (%zu with flipped labels) in %s: %zu got weight exactly 0; "
        "flipped among them %.1f%% (precision of weight 0 as a noise detector), flipped ones "
        "that got it %.1f%% (recall)\n",
        label.c_str(), s.examples, s.flipped, dump.file().string().c_str(), s.zero,
        100 * s.precision(), 100 * s.recall());
}

}  // namespace examples
