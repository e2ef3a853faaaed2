// examples/imbalance_runs.hpp — what examples/mnist_imbalance.cpp runs (its flags are in
// imbalance_config.hpp): its data, the plan of runs (each with what defines it, checked against its
// checkpoint before anything is printed) and one training run with its running sums kept in
// its checkpoint, so that a resumed run reports what the uninterrupted one would have.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <l2rw/l2rw.hpp>
#include <optional>
#include <string>
#include <vector>

#include "common.hpp"
#include "flags.hpp"
#include "imbalance_config.hpp"
#include "progress.hpp"

namespace examples::imbalance {

/// The data of every run, loaded once.
struct Data {
    std::string name, dir;
    bool fashion = false;
    data::Dataset train, test;  // train: all classes; test: the two classes, relabelled
};

/// Loads the data (without printing), fills in the default classes and checks that each class
/// has the images the largest proportion needs.
inline Data load_data(Config& c) {
    Data d;
    d.dir = c.data_dir;
    if (c.data_dir.empty()) {
        const auto dir = default_fashion_mnist_dir();
        if (!dir) {
            std::printf(
                "mnist_imbalance: no --data DIR given and no Fashion-MNIST found (Debian package "
                "dataset-fashion-mnist); nothing to run.\n");
            std::exit(exit_skip);
        }
        d.dir = dir->string();
        d.fashion = true;
    }
    d.name = d.fashion ? "Fashion-MNIST" : "MNIST";
    if (c.classes.empty())
        c.classes = d.fashion ? std::vector<index_t>{4, 6} : std::vector<index_t>{4, 9};
    d.train = d.fashion ? data::load_fashion_mnist(d.dir, true) : data::load_mnist(d.dir, true);
    const auto all_test =
        d.fashion ? data::load_fashion_mnist(d.dir, false) : data::load_mnist(d.dir, false);
    const index_t minority = c.classes[0], majority = c.classes[1];
    const auto counts = d.train.class_counts();
    for (double p : c.proportions) {
        const index_t major = majority_count(c, p);
        for (const auto& [k, need] :
             {std::pair{majority, major}, std::pair{minority, c.train_size - major}})
            if (need > counts[static_cast<std::size_t>(k)])
                throw FlagError(
                    format("--train-size %ld at p=%s needs %ld images of class %ld, but %s has %ld",
                           static_cast<long>(c.train_size), pstr(p).c_str(),
                           static_cast<long>(need), static_cast<long>(k), d.name.c_str(),
                           static_cast<long>(counts[static_cast<std::size_t>(k)])));
    }
    // The test set restricted to the two classes, relabelled like data::imbalanced_binary.
    std::vector<index_t> rows;
    for (index_t i = 0; i < all_test.n; ++i) {
        const index_t y = all_test.labels[static_cast<std::size_t>(i)];
        if (y == minority || y == majority) rows.push_back(i);
    }
    d.test = all_test.subset(rows);
    for (auto& y : d.test.labels) y = y == majority ? data::majority_label : data::minority_label;
    d.test.classes = 2;
    return d;
}

/// One run of the sweep: what defines it (stored in its checkpoint) and where it resumes.
struct PlannedRun {
    std::string method;
    double proportion = 0;
    std::uint64_t seed = 0;
    fs::path checkpoint;
    io::Metadata definition;
    std::optional<std::int64_t> resume_at;
};

/// How many plain steps a step of `method` costs, roughly (for the first ETA only).
inline double method_cost(const std::string& method) {
    return method == "l2rw" ? 2.5 : method == "hard_mining" ? 1.4 : 1.0;
}

/// What every run of the sweep shares (OUT/sweep.txt); a run adds its method, p and seed.
inline io::Metadata sweep_definition(const Config& c, const Data& d) {
    return {{"program", "mnist_imbalance"},
            {"data", d.name + " " + d.dir},
            {"classes", std::to_string(c.classes[0]) + "," + std::to_string(c.classes[1])},
            {"train_size", std::to_string(c.train_size)},
            {"clean", std::to_string(c.clean)},
            {"batch", std::to_string(c.batch)},
            {"lr", exact_str(c.lr)},
            {"momentum", exact_str(c.momentum)},
            {"eval_every", std::to_string(c.eval_every)}};
}

/// Which run a row of results.csv or evals.csv is: "method p seed".
inline std::string run_key(const std::string& method, double p, std::uint64_t seed) {
    return method + " " + pstr(p) + " " + std::to_string(seed);
}

/// Every run in order; with --resume, every checkpoint is checked against its run first.
inline std::vector<PlannedRun> plan_runs(const Config& c, const Data& d) {
    std::vector<PlannedRun> plan;
    for (double p : c.proportions)
        for (int r = 0; r < c.seeds; ++r)
            for (const auto& m : c.methods) {
                PlannedRun run{m, p, c.first_seed + static_cast<std::uint64_t>(r), {}, {}, {}};
                run.checkpoint = fs::path(c.out) / ("ckpt_" + m + "_p" + pstr(p) + "_seed" +
                                                    std::to_string(run.seed) + ".l2ck");
                run.definition = sweep_definition(c, d);
                run.definition["proportion"] = pstr(p);
                run.definition["method"] = m;
                run.definition["seed"] = std::to_string(run.seed);
                if (c.resume) run.resume_at = resume_point(run.checkpoint, run.definition, c.steps);
                plan.push_back(std::move(run));
            }
    return plan;
}

/// One training run's outcome.
struct RunResult {
    std::string method;
    double proportion = 0;
    std::uint64_t seed = 0;
    double error = 0, loss = 0, seconds = 0;  // seconds: training, all sessions, no evaluations
    std::int64_t steps_done = 0, steps_run = 0, first_step = 0, skipped = 0, zero_total = 0;
    std::string zero_at_evals;  // "step:count;..." zero-weight examples since the last eval
    index_t train_n = 0, train_minority = 0;
};

struct EvalRow {
    std::string method;
    double proportion = 0;
    std::uint64_t seed = 0;
    std::int64_t step = 0;
    double error = 0;
    std::int64_t zero_last_batch = 0, zero_since = 0, examples_since = 0;
};

/// Trains run `plan` (number i of n), appends its evaluations to `evals` and returns its
/// result. Its running sums go into each checkpoint and come back on a resume.
inline RunResult train_run(const Config& c, const Data& d, const PlannedRun& plan, std::size_t i,
                           std::size_t n, Sweep& sweep, std::vector<EvalRow>& evals) {
    const double p = plan.proportion;
    const std::uint64_t seed = plan.seed;
    // The split depends on (seed, proportion) only: every method sees the same data.
    Rng rng(derive_seed(seed, 0x1b, std::llround(p * 1e6)));
    const data::Dataset cut =
        data::imbalanced_binary(d.train, c.classes[1], c.classes[0], c.train_size, p, rng);
    const auto split = data::split_clean_validation(cut, data::Total{c.clean}, rng);
    const std::string label = format("[%zu/%zu] %s p=%s seed %llu", i + 1, n, plan.method.c_str(),
                                     pstr(p).c_str(), static_cast<unsigned long long>(seed));
    auto model =
        nn::lenet<T, B>(nn::LeNetOptions{split.train.c, split.train.h, 1}, derive_seed(seed, 0x4d));
    optim::SGD<T, B> opt({.lr = c.lr, .momentum = c.momentum});
    meta::PolicyConfig pc;
    pc.seed = derive_seed(seed, 0x90);
    pc.majority_class = data::majority_label;
    auto policy = meta::make_policy<Model>(plan.method, pc);

    meta::TrainOptions o;
    const std::int64_t first =
        c.resume ? announce_resume(plan.checkpoint, label, plan.resume_at, c.steps) : 0;
    o.steps = c.session_steps > 0 ? std::min(c.steps, first + c.session_steps) : c.steps;
    o.batch_size = c.batch;
    o.validation_batch_size = 100;
    o.seed = derive_seed(seed, 0x7e);
    o.eval_every = c.eval_every;
    o.checkpoint_every = c.checkpoint_every;
    o.resume = c.resume;
    o.run = plan.definition;
    if (c.checkpoint_every > 0 || c.resume) o.checkpoint_path = plan.checkpoint;

    Progress progress(label, c.steps, first, c.progress_every, &sweep, i);
    RunResult res;
    res.method = plan.method;
    res.proportion = p;
    res.seed = seed;
    res.train_n = split.train.n;
    res.train_minority = split.train.class_counts()[data::minority_label];
    // The running sums, all sessions together (restored on a resume).
    std::int64_t zero_last = 0, zero_since = 0, examples_since = 0, skipped = 0;
    std::int64_t last_eval_step = -1;
    double last_error = -1, last_loss = 0, seconds_before = 0, eval_seconds = 0;
    std::vector<EvalRow> mine;
    meta::Callbacks<T> cb;
    cb.on_step = [&](std::int64_t s, const meta::StepReport<T>& rep, double loss) {
        skipped += rep.skipped;
        zero_last = rep.zero_count;
        zero_since += rep.zero_count;
        examples_since += static_cast<std::int64_t>(rep.weights.size());
        res.zero_total += rep.zero_count;
        progress.step(s + 1, loss,
                      last_error < 0 ? std::string{} : format("test err %.2f%%", 100 * last_error));
    };
    auto evaluate = [&](std::int64_t done) {
        const Stopwatch ew;
        const auto ev = meta::evaluate(*model, d.test, 500);
        eval_seconds += ew.seconds();
        last_error = 1 - ev.accuracy;
        last_loss = ev.loss;
        last_eval_step = done;
        progress.note(format(
            "step %lld: test error %.2f%%, zero-weight examples: %lld in the last "
            "batch, %lld of %lld since the last evaluation",
            static_cast<long long>(done), 100 * last_error, static_cast<long long>(zero_last),
            static_cast<long long>(zero_since), static_cast<long long>(examples_since)));
        mine.push_back(
            {plan.method, p, seed, done, last_error, zero_last, zero_since, examples_since});
        res.zero_at_evals += (res.zero_at_evals.empty() ? "" : ";") + std::to_string(done) + ":" +
                             std::to_string(zero_since);
        zero_since = examples_since = 0;
    };
    cb.on_eval = evaluate;
    // The running sums a checkpoint keeps, visited alike to save (put) and restore (get).
    auto sums = [&](auto&& io) {
        io("zero_total", res.zero_total);
        io("zero_last", zero_last);
        io("zero_since", zero_since);
        io("examples_since", examples_since);
        io("zero_at_evals", res.zero_at_evals);
        io("last_eval_step", last_eval_step);
        io("last_error", last_error);
        io("last_loss", last_loss);
        io("skipped", skipped);
    };
    cb.on_checkpoint = [&] {
        State st;
        sums([&](const char* k, const auto& v) { st.put(k, v); });
        st.put("seconds", seconds_before + progress.seconds() - eval_seconds);
        std::string rows;
        for (const auto& e : mine)
            rows += format("%lld %a %lld %lld %lld;", static_cast<long long>(e.step), e.error,
                           static_cast<long long>(e.zero_last_batch),
                           static_cast<long long>(e.zero_since),
                           static_cast<long long>(e.examples_since));
        st.put("evals", rows);
        return st.metadata();
    };
    cb.on_resume = [&](const io::Metadata& m) {
        const State st(m);
        sums([&](const char* k, auto& v) { st.get(k, v); });
        st.get("seconds", seconds_before);
        std::string rows;
        st.get("evals", rows);
        for (std::size_t a = 0, b; (b = rows.find(';', a)) != std::string::npos; a = b + 1) {
            EvalRow e{plan.method, p, seed};
            long long step = 0, zl = 0, zs = 0, es = 0;
            char err[64] = {};
            if (std::sscanf(rows.substr(a, b - a).c_str(), "%lld %63s %lld %lld %lld", &step, err,
                            &zl, &zs, &es) != 5)
                throw CheckpointError("checkpoint " + plan.checkpoint.string() +
                                      ": the saved evaluations are malformed");
            e.step = step;
            e.error = std::strtod(err, nullptr);
            e.zero_last_batch = zl;
            e.zero_since = zs;
            e.examples_since = es;
            mine.push_back(e);
        }
    };
    const auto sum = meta::train(*model, opt, *policy, split.train, split.val, o, cb);
    progress.finish();
    res.first_step = sum.first_step;
    res.steps_done = sum.steps_done;
    res.steps_run = sum.steps_done - sum.first_step;
    res.skipped = skipped;
    res.seconds = seconds_before + progress.seconds() - eval_seconds;
    if (last_eval_step != sum.steps_done) evaluate(sum.steps_done);  // always after the last step
    res.error = last_error;
    res.loss = last_loss;
    if (sum.steps_done < c.steps) sweep.drop(i);
    evals.insert(evals.end(), mine.begin(), mine.end());
    std::printf(
        "%s: test error %.2f%%  (%lld steps in %.1f s, %.2f ms/step; %lld zero-weight "
        "examples, %lld skipped batches)%s\n",
        label.c_str(), 100 * res.error, static_cast<long long>(res.steps_done), res.seconds,
        res.steps_done ? 1e3 * res.seconds / static_cast<double>(res.steps_done) : 0.0,
        static_cast<long long>(res.zero_total), static_cast<long long>(res.skipped),
        sum.steps_done < c.steps ? " -- stopped early (--session-steps)" : "");
    return res;
}

}  // namespace examples::imbalance
