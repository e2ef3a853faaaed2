// l2rw/meta/train.hpp — one training loop for every weighting policy, and the paper's "+FT"
// fine-tuning on the clean set (evaluation: meta/evaluate.hpp).
//
//   auto policy = meta::make_policy<Model>("l2rw");
//   meta::TrainOptions o{.steps = 8000, .batch_size = 100, .seed = 1};
//   meta::Callbacks<float> cb{.on_eval = [&](std::int64_t done) { log(meta::evaluate(*model,
//   test)); }}; meta::train(*model, sgd, *policy, train_set, clean_set, o, cb);
//   meta::fine_tune(*model, sgd, clean_set, 1000, 100);          // "+FT"
//
// Step s (0-based) of train():
//   1. the learning rate schedule, if any, sets the optimizer's rate to schedule.lr(s);
//   2. the batch: the policy's choice (Resample) or the next batch of a seeded shuffle of the
//      training set (data::Batcher, whole batches only), then the augmentation hook on a copy;
//   3. for a policy that uses it, the validation batch: the whole clean set when it holds no
//      more than validation_batch_size examples, else the next batch of its own shuffle;
//   4. the policy's weights w and, unless the batch is skipped, the gradient of Σ_i w_i f_i(θ)
//      in train mode (BatchNorm statistics updated, dropout on), then one optimizer step
//      (WeightingPolicy::weigh_step: the l2rw policy takes both from one training forward).
// Every random draw (shuffles, augmentation, dropout, the policies' own) is seeded from
// (seed, step), so a run resumed from a checkpoint continues bit for bit as the uninterrupted
// run would have.
//
// Checkpoints hold the model, the optimizer state and the number of steps done, stored as the
// optimizer's step count. So that the two agree, a skipped batch (all weights zero) advances
// the optimizer's step count without touching parameters or state (for Adam this means its
// bias correction counts skipped steps too), and a run that writes checkpoints must start
// from a fresh optimizer (step count 0) unless it resumes. They also hold what defines the run
// (TrainOptions::run, compared on resume: a checkpoint of another run is refused) and the
// caller's own state (Callbacks::on_checkpoint, handed back by Callbacks::on_resume), so that
// running statistics survive an interruption too.
//
// Data-parallel (TrainOptions::comm with P > 1 ranks, each running train() with the same
// model, data and options): every rank draws the same batch and takes its part of it
// (data::shard_of), the policy weighs the whole batch (l2rw: data-parallel, each rank its own
// part), the gradient is summed over ranks and every rank takes the same step; BatchNorm's
// running statistics are averaged over ranks after each step, so the ranks stay identical.
// Dropout draws each rank's masks from a stream of its own. Rank 0 alone writes checkpoints;
// every rank reads them on a resume (a file system they all see).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <limits>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "../data/dataset.hpp"
#include "../data/sampler.hpp"
#include "../io/checkpoint.hpp"
#include "../optim/schedule.hpp"
#include "evaluate.hpp"
#include "policies.hpp"

namespace l2rw::meta {

struct TrainOptions {
    /// Total steps: a fresh run takes steps 0 .. steps − 1; a resumed one the rest of them.
    std::int64_t steps = 100;
    /// Training batch size (the paper: 100). A training set smaller than this is one batch.
    index_t batch_size = 100;
    /// Validation batch size (the paper: 100); a clean set no larger is used whole every step.
    index_t validation_batch_size = 100;
    /// Seeds the shuffles, the augmentation and dropout (policies have their own seeds).
    std::uint64_t seed = 0;
    /// Learning rate per step; none: the optimizer's rate is left alone.
    std::optional<optim::PiecewiseConstant> lr_schedule{};
    /// Callbacks::on_eval after every this many steps (0: never).
    std::int64_t eval_every = 0;
    /// Save a checkpoint to checkpoint_path after every this many steps and after the last
    /// one (0: never).
    std::int64_t checkpoint_every = 0;
    std::filesystem::path checkpoint_path{};
    /// Load checkpoint_path first when it exists, and go on from the step it was saved at.
    bool resume = false;
    /// What defines the run, in the caller's words (e.g. {"lr", "0.1"}, {"classes", "4,6"}):
    /// stored in every checkpoint. A resume from a checkpoint whose run differs throws
    /// CheckpointError naming every key that differs, before anything is loaded.
    io::Metadata run{};
    /// Applied to a copy of each training batch (e.g. data::augment_crop_flip), with a
    /// generator seeded from (seed, step).
    std::function<void(data::Dataset& batch, Rng& rng)> augment{};
    /// The ranks of a data-parallel run (see the file comment; it must outlive train());
    /// null: one process.
    const dist::Communicator* comm = nullptr;
};

template <class T>
struct Callbacks {
    /// After step `step` (0-based): the policy's report and the weighted training loss
    /// Σ_i w_i f_i (0 for a skipped batch).
    std::function<void(std::int64_t step, const StepReport<T>& report, double loss)> on_step{};
    /// After every TrainOptions::eval_every steps, with the number of steps done.
    std::function<void(std::int64_t steps_done)> on_eval{};
    /// The caller's own state (running sums, say) to store in each checkpoint as it is saved.
    std::function<io::Metadata()> on_checkpoint{};
    /// On a resume, before the first step: what on_checkpoint gave for the checkpoint loaded.
    std::function<void(const io::Metadata& state)> on_resume{};
};

struct TrainSummary {
    std::int64_t first_step = 0;  ///< the first step this call ran (> 0 after a resume)
    std::int64_t steps_done = 0;  ///< steps done in all, this call and the run it resumed
    std::int64_t skipped = 0;     ///< batches this call skipped (all weights zero)
    bool resumed = false;
    double last_loss = 0;  ///< the weighted training loss of the last step run
};

/// A dataset's rows as a meta::Batch (noise flags only when the dataset carries noise).
template <class T, Backend B>
Batch<T, B> make_batch(const data::Dataset& ds, const std::vector<index_t>& rows) {
    auto b = data::to_batch<T, B>(ds, rows);
    if (!ds.has_noise()) b.noisy.clear();
    return b;
}

namespace detail {

/// A Batcher positioned at the batch of step `step` (one batch per step from step 0).
inline data::Batcher batcher_at(index_t n, index_t batch, std::uint64_t seed, std::int64_t step) {
    data::Batcher b(n, batch, seed, /*drop_last=*/true);
    const auto per = static_cast<std::int64_t>(b.batches_per_epoch());
    b.seek(static_cast<index_t>(step / per));
    for (std::int64_t k = 0; k < step % per; ++k) (void)b.next();
    return b;
}

// A checkpoint's metadata: the run's definition under "run/", the caller's state under "state/".
inline constexpr std::string_view run_prefix = "run/", state_prefix = "state/";

inline io::Metadata checkpoint_metadata(const io::Metadata& run, const io::Metadata& state) {
    io::Metadata m;
    for (const auto& [k, v] : run) m.emplace(std::string(run_prefix) + k, v);
    for (const auto& [k, v] : state) m.emplace(std::string(state_prefix) + k, v);
    return m;
}

/// The entries of `m` under `prefix`, the prefix taken off.
inline io::Metadata metadata_part(const io::Metadata& m, std::string_view prefix) {
    io::Metadata out;
    for (const auto& [k, v] : m)
        if (k.starts_with(prefix)) out.emplace(k.substr(prefix.size()), v);
    return out;
}

inline constexpr std::uint64_t stream_train_order = 0x0d1, stream_val_order = 0x0d2,
                               stream_augment = 0x0a5, stream_dropout = 0x0d0;
/// Rank r > 0 of a data-parallel run draws its dropout masks from stream_dropout + r·this.
inline constexpr std::uint64_t stream_rank = 0x10000;

}  // namespace detail

/// Whether a run may resume from the checkpoint `info` read from `file`: throws
/// CheckpointError when it was saved by another run (its TrainOptions::run differs from
/// `run`; the message names every key that differs, with both values) or after more than
/// `steps` steps. train() calls it before it loads anything; a program with several runs can
/// call it on io::probe_checkpoint's answer for each of them before it starts the first.
inline void check_resume(const std::string& file, const io::CheckpointInfo& info,
                         const io::Metadata& run, std::int64_t steps) {
    const std::string diff =
        io::metadata_differences(detail::metadata_part(info.metadata, detail::run_prefix), run);
    if (!diff.empty())
        throw CheckpointError("checkpoint " + file + " was saved by another run (" + diff +
                              "): resume with the settings it was made with, or move it away to "
                              "start afresh");
    if (info.optimizer_step > steps)
        throw CheckpointError("checkpoint " + file + " was saved after step " +
                              std::to_string(info.optimizer_step) + ", past the " +
                              std::to_string(steps) + " steps of this run: its model is not a " +
                              std::to_string(steps) + "-step result");
}

/// Trains `model` with `opt` (optim::SGD, optim::Adam, or any optimizer with step(ParamList,
/// GradList), lr(), set_lr, step_count() and set_step_count()) for options.steps steps, the
/// example weights from `policy`, batches from `train_set`, validation batches (for policies
/// that use them) from `clean_set`. See the file comment for the step. Throws NumericError
/// naming the step when the training loss, or anything the policy computes, is not finite.
template <class Model, class Opt>
TrainSummary train(Model& model, Opt& opt, WeightingPolicy<Model>& policy,
                   const data::Dataset& train_set, const data::Dataset& clean_set,
                   const TrainOptions& o, const Callbacks<typename Model::value_type>& cb = {}) {
    using T = typename Model::value_type;
    using B = typename Model::backend;
    if (o.steps < 0) throw ValueError("train: negative step count " + std::to_string(o.steps));
    if (train_set.n <= 0) throw ValueError("train: the training set is empty");
    if (o.batch_size <= 0)
        throw ValueError("train: batch size " + std::to_string(o.batch_size) + " is not positive");
    if (o.eval_every < 0 || o.checkpoint_every < 0)
        throw ValueError("train: eval_every and checkpoint_every must be >= 0");
    const bool checkpointing = o.checkpoint_every > 0;
    if (checkpointing && o.checkpoint_path.empty())
        throw ValueError("train: checkpoint_every is set but checkpoint_path is empty");
    if (o.resume && o.checkpoint_path.empty())
        throw ValueError("train: resume is set but checkpoint_path is empty");
    const bool use_val = policy.uses_validation();
    if (use_val && clean_set.n <= 0)
        throw ValueError("train: policy '" + policy.name() +
                         "' needs a clean validation set, but it is empty");
    if (use_val && o.validation_batch_size <= 0)
        throw ValueError("train: validation batch size " + std::to_string(o.validation_batch_size) +
                         " is not positive");

    const auto& comm = dist::or_single(o.comm);
    const int ranks = comm.size(), rank = comm.rank();
    TrainSummary sum;
    if (o.resume && io::checkpoint_exists(o.checkpoint_path)) {
        const std::string f = o.checkpoint_path.string();
        const auto saved = io::load_checkpoint(
            o.checkpoint_path, model, opt,
            [&](const io::CheckpointInfo& info) { check_resume(f, info, o.run, o.steps); });
        sum.first_step = static_cast<std::int64_t>(opt.step_count());
        sum.resumed = true;
        if (cb.on_resume) cb.on_resume(detail::metadata_part(saved, detail::state_prefix));
    } else if (checkpointing && opt.step_count() != 0) {
        throw ValueError(
            "train: checkpoints count steps with the optimizer's step count, so a run that saves "
            "them "
            "must start from a fresh optimizer (this one has taken " +
            std::to_string(opt.step_count()) + " steps)");
    }
    sum.steps_done = sum.first_step;
    policy.prepare(train_set);

    const optim::ParamList<T, B> params(nn::named_parameters(model));
    const index_t bs = std::min(o.batch_size, train_set.n);
    auto order = detail::batcher_at(train_set.n, bs,
                                    detail::stream_seed(o.seed, detail::stream_train_order, 0),
                                    sum.first_step);
    // This rank's part of a batch (the batch itself with one rank).
    auto own = [&](const Batch<T, B>& b) {
        const auto part = data::shard_of(b.size(), rank, ranks);
        return std::pair{
            part, ranks == 1 ? std::optional<Batch<T, B>>{} : data::slice(b, part.begin, part.end)};
    };
    std::optional<Batch<T, B>> whole_val, own_whole_val;
    std::optional<data::Batcher> val_order;
    if (use_val) {
        if (clean_set.n <= o.validation_batch_size) {
            whole_val = make_batch<T, B>(clean_set, data::iota_indices(clean_set.n));
            own_whole_val = own(*whole_val).second;
        } else {
            val_order = detail::batcher_at(clean_set.n, o.validation_batch_size,
                                           detail::stream_seed(o.seed, detail::stream_val_order, 0),
                                           sum.first_step);
        }
    }
    std::function<Lookahead<T, B>()> lookahead;
    if constexpr (requires { lookahead_from(opt, params); })
        lookahead = [&opt, &params] { return lookahead_from(opt, params); };

    for (std::int64_t s = sum.first_step; s < o.steps; ++s) {
        if (o.lr_schedule) opt.set_lr(o.lr_schedule->lr(s));
        auto rows = order.next();  // drawn every step, so the order stays a function of the step
        if (auto chosen = policy.select(train_set, bs, s)) rows = std::move(*chosen);
        Batch<T, B> batch;
        if (o.augment) {
            auto part = train_set.subset(rows);
            Rng rng(detail::stream_seed(o.seed, detail::stream_augment, s));
            o.augment(part, rng);
            batch = make_batch<T, B>(part, data::iota_indices(part.n));
            batch.indices = rows;  // the training set's rows, for messages
        } else {
            batch = make_batch<T, B>(train_set, rows);
        }
        std::optional<Batch<T, B>> val_batch, own_val_batch;
        if (val_order) {
            val_batch = make_batch<T, B>(clean_set, val_order->next());
            own_val_batch = own(*val_batch).second;
        }
        const Batch<T, B>* val = whole_val ? &*whole_val : val_batch ? &*val_batch : nullptr;
        const Batch<T, B>* own_val = own_whole_val   ? &*own_whole_val
                                     : own_val_batch ? &*own_val_batch
                                                     : val;
        const auto [part, own_batch] = own(batch);

        // A step that throws leaves the model and the optimizer as they were (the optimizer
        // checks everything before it writes; the snapshot puts the buffers back).
        const detail::BufferSnapshot<T, B> snap(model);
        auto ws = detail::guarded_step(
            snap, "train: step " + std::to_string(s) + " (policy '" + policy.name() + "'): ", batch,
            val, [&] {
                Rng rng(detail::stream_seed(
                    o.seed, detail::stream_dropout + detail::stream_rank * rank, s));
                auto w = policy.weigh_step(
                    PolicyInput<Model>{model, batch, val, s, opt.lr(), lookahead, o.comm,
                                       own_batch ? &*own_batch : &batch, own_val, part},
                    &rng);
                if (w.report.weights.size() != static_cast<std::size_t>(batch.y.numel()))
                    throw ShapeError("train: step " + std::to_string(s) + ": policy '" +
                                     policy.name() + "' gave " +
                                     std::to_string(w.report.weights.size()) + " weights for " +
                                     std::to_string(batch.y.numel()) + " examples");
                if (!w.report.skipped)
                    opt.step(params, w.gradient);
                else
                    opt.set_step_count(opt.step_count() + 1);
                detail::average_buffers(model, comm);
                return w;
            });
        const StepReport<T>& report = ws.report;
        const double loss = ws.loss;
        sum.skipped += report.skipped;
        sum.last_loss = loss;
        sum.steps_done = s + 1;
        if (cb.on_step) cb.on_step(s, report, loss);
        if (o.eval_every > 0 && (s + 1) % o.eval_every == 0 && cb.on_eval) cb.on_eval(s + 1);
        if (checkpointing && ((s + 1) % o.checkpoint_every == 0 || s + 1 == o.steps)) {
            const auto state = cb.on_checkpoint ? cb.on_checkpoint() : io::Metadata{};
            // Rank 0 writes for all (the ranks are identical); the others wait for the file.
            dist::agree(comm, 0, [&](std::span<double>) {
                if (rank == 0)
                    io::save_checkpoint(o.checkpoint_path, model, opt,
                                        detail::checkpoint_metadata(o.run, state));
            });
        }
    }
    return sum;
}

/// The paper's "+FT": plain training (uniform weights, default_loss) of `model` on the clean
/// set alone for `steps` steps of `batch_size` examples (the whole set when it is smaller),
/// with `opt` as it is (set its learning rate first). Returns the summary of the run.
template <class Model, class Opt>
TrainSummary fine_tune(Model& model, Opt& opt, const data::Dataset& clean_set, std::int64_t steps,
                       index_t batch_size = 100, std::uint64_t seed = 0,
                       const Callbacks<typename Model::value_type>& cb = {}) {
    Uniform<Model> uniform;
    TrainOptions o;
    o.steps = steps;
    o.batch_size = batch_size;
    o.seed = seed;
    return train(model, opt, uniform, clean_set, data::Dataset{}, o, cb);
}

}  // namespace l2rw::meta
