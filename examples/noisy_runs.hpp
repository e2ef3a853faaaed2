// examples/noisy_runs.hpp — what examples/noisy_labels.cpp runs: its configuration, its flags
// and the checks that need more than one of them, its data (loaded and checked before
// anything is printed), and one phase of training (a method, or the fine-tuning after it)
// with progress, evaluations, checkpoints that carry the phase's definition and running sums,
// and (when asked) a dump of the weights over a window of steps (examples/weight_dump.hpp).
#pragma once

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <l2rw/l2rw.hpp>
#include <optional>
#include <string>
#include <vector>

#include "common.hpp"
#include "flags.hpp"
#include "progress.hpp"
#include "weight_dump.hpp"

namespace examples::noisy {

using namespace l2rw;
using T = float;
using B = Cpu;
using Model = nn::Sequential<T, B>;
namespace fs = std::filesystem;

struct Config : SweepConfig {
    Config() {
        eval_every = 2000;
        out = default_out_dir("noisy_labels_out");
    }
    std::string data_dir, dataset = "cifar10", noise = "uniform", model = "resnet32";
    std::vector<double> ratios{0.4};
    index_t clean = -1, clean_per_class = -1, background_class = -1;  // -1: not given
    index_t train_size = 0, test_size = 0;
    std::vector<std::string> methods{"uniform", "reed_soft",  "reed_hard", "random",
                                     "l2rw",    "uniform+ft", "random+ft"};
    std::int64_t steps = 0, ft_steps = -1;  // 0 / -1: the defaults
    double lr = 0.1, momentum = 0.9, weight_decay = 5e-4, ft_lr = -1;
    index_t batch = 100;
    std::string augment = "auto";
    std::int64_t weight_dump_step = -1, weight_dump_batches = 50;  // -1: no dump
    bool dataset_given = false, steps_given = false, weight_dump_batches_given = false;
};

/// A noise ratio as the program writes it (results.csv, file names, messages).
inline std::string ratio_str(double r) { return format("%g", r); }

/// A base method and whether its plain result, its +FT result, or both are asked for.
struct Variant {
    std::string base;
    bool plain = false, ft = false;
};

/// The methods as one training per base method, in the order first named; throws FlagError
/// for an unknown or repeated name.
inline std::vector<Variant> plan_variants(std::vector<std::string> methods) {
    std::vector<Variant> plan;
    for (auto& m : methods)
        std::transform(m.begin(), m.end(), m.begin(), [](unsigned char ch) {
            return static_cast<char>(ch == '-' ? '_' : std::tolower(ch));
        });
    require_distinct(methods, "--methods", [](const std::string& m) { return "'" + m + "'"; });
    for (const auto& m : methods) {
        const bool ft = m.size() > 3 && m.substr(m.size() - 3) == "+ft";
        const std::string base = ft ? m.substr(0, m.size() - 3) : m;
        check_method(base);
        auto it = std::find_if(plan.begin(), plan.end(),
                               [&](const Variant& v) { return v.base == base; });
        if (it == plan.end()) it = plan.insert(plan.end(), Variant{base});
        (ft ? it->ft : it->plain) = true;
    }
    return plan;
}

/// The checks that need more than one flag (before the data is read; c.steps is set, and
/// `plan` is plan_variants(c.methods)).
inline void check_flags(const Config& c, const std::vector<Variant>& plan) {
    require_distinct(c.ratios, "--ratio", ratio_str);
    if (c.weight_dump_batches_given && c.weight_dump_step < 0)
        throw FlagError("--weight-dump-batches is for --weight-dump-step");
    if (c.weight_dump_step >= c.steps)
        throw FlagError(format("--weight-dump-step %lld must be less than --steps %lld%s",
                               static_cast<long long>(c.weight_dump_step),
                               static_cast<long long>(c.steps),
                               c.steps_given ? "" : " (the paper's schedule: --steps not given)"));
    if (c.weight_dump_step >= 0 && std::none_of(plan.begin(), plan.end(), [](const Variant& v) {
            return per_example_weights(v.base);
        }))
        throw FlagError(std::string("--weight-dump-step: none of --methods gives per-example "
                                    "weights (") +
                        per_example_methods() + " do)");
    if (c.clean >= 0 && c.clean_per_class >= 0)
        throw FlagError("give --clean or --clean-per-class, not both");
    if (c.dataset_given && c.data_dir.empty())
        throw FlagError("--dataset " + c.dataset +
                        " needs --data DIR (without --data the program runs on Fashion-MNIST)");
    if (c.background_class >= 0 && c.noise != "background")
        throw FlagError("--background-class is for --noise background");
    const index_t classes = c.data_dir.empty() || c.dataset == "cifar10" ? 10 : 100;
    if (c.background_class >= classes)
        throw FlagError("--background-class " + std::to_string(c.background_class) +
                        " is not a class of the data (0.." + std::to_string(classes - 1) + ")");
    check_sweep_flags(c);
}

/// Adds the program's flags to `app`, bound to `c`. Call what it returns after parsing: it
/// notes in `c` which flags were given.
inline std::function<void()> add_flags(CLI::App& app, Config& c) {
    app.add_option("--data", c.data_dir,
                   "directory of the CIFAR binary files (cifar-10-batches-bin or cifar-100-binary, "
                   "or their parent); default: Fashion-MNIST from the system");
    app.add_option("--dataset", c.dataset, "cifar10 or cifar100 (with --data)")
        ->check(one_of({"cifar10", "cifar100"}))
        ->capture_default_str();
    app.add_option("--noise", c.noise,
                   "uniform (UniformFlip: to any other class) or background (BackgroundFlip: to "
                   "one background class)")
        ->check(one_of({"uniform", "background"}))
        ->capture_default_str();
    app.add_option("--ratio", c.ratios,
                   "share of the training labels flipped, in [0, 1]; a comma-separated list "
                   "(e.g. 0,0.1,0.2,0.3,0.4,0.5) runs every method and seed at each ratio and "
                   "draws Figure 5 (OUT/figure5.png: test accuracy against the noise ratio)")
        ->delimiter(',')
        ->check(between(0, 1))
        ->capture_default_str();
    app.add_option("--clean", c.clean,
                   "clean validation images in all, split off the training set, stratified "
                   "(default for uniform noise: 1000)")
        ->check(at_least(1));
    app.add_option("--clean-per-class", c.clean_per_class,
                   "clean validation images per class (default for background noise: 10)")
        ->check(at_least(1));
    app.add_option("--background-class", c.background_class,
                   "the background class of BackgroundFlip; default: the paper's per-trial "
                   "classes 0,1,3,5,7 (CIFAR-100: 7,12,41,62,85), one per seed in turn")
        ->check(at_least(0));
    app.add_option("--model", c.model,
                   "resnet32 (the paper's BackgroundFlip model), wrn28-10 (UniformFlip), or lenet")
        ->check(one_of({"resnet32", "wrn28-10", "lenet"}))
        ->capture_default_str();
    app.add_option("--methods", c.methods,
                   "comma-separated: uniform, random, reed_soft, reed_hard, l2rw (also proportion, "
                   "resample, hard_mining); append +ft for the fine-tuned variant (uniform+ft = "
                   "the paper's Baseline +FT). A method and its +ft share one training run")
        ->delimiter(',')
        ->capture_default_str();
    auto* steps =
        app.add_option("--steps", c.steps,
                       "training steps; default the paper's 80000 (wrn28-10: 60000): with the "
                       "default 7 methods, days on a CPU (the program prints its estimate). "
                       "The decay points (40k/60k of 80k, 40k/50k of 60k) scale with it")
            ->check(at_least(1));
    app.add_option("--lr", c.lr, "initial learning rate")
        ->check(greater_than(0))
        ->capture_default_str();
    app.add_option("--momentum", c.momentum, "SGD momentum, in [0, 1)")
        ->check(from_below(0, 1))
        ->capture_default_str();
    app.add_option("--weight-decay", c.weight_decay,
                   "L2 weight decay (the paper uses weight decay without giving the value)")
        ->check(at_least(0))
        ->capture_default_str();
    app.add_option("--batch", c.batch, "minibatch size")->check(at_least(1))->capture_default_str();
    app.add_option("--ft-steps", c.ft_steps,
                   "+FT steps on the clean set; default the paper's 5000, scaled by steps / full "
                   "schedule when --steps is shorter")
        ->check(at_least(1));
    app.add_option("--ft-lr", c.ft_lr,
                   "+FT learning rate; default the rate the schedule ends at (lr x 0.01)")
        ->check(greater_than(0));
    app.add_option("--augment", c.augment,
                   "pad-4 random crop and horizontal flip of training batches: auto (on for "
                   "CIFAR, off for Fashion-MNIST), on, off")
        ->check(one_of({"auto", "on", "off"}))
        ->capture_default_str();
    app.add_option("--train-size", c.train_size,
                   "use a random subset of this many training images (0: all)")
        ->check(at_least(0))
        ->capture_default_str();
    app.add_option("--test-size", c.test_size, "evaluate on the first N test images (0: all)")
        ->check(at_least(0))
        ->capture_default_str();
    app.add_option("--weight-dump-step", c.weight_dump_step,
                   "from step K (0-based, below --steps; the paper's Figure 3 takes a model "
                   "trained half-way) for --weight-dump-batches batches, write every "
                   "example's weight and whether its label was flipped to "
                   "OUT/weights_<method>_<ratio>_seed<s>.csv, for the methods that give "
                   "per-example weights (" +
                       std::string(per_example_methods()) +
                       "), and draw Figure 3 (OUT/figure3.png)")
        ->check(at_least(0));
    auto* dump_batches = app.add_option("--weight-dump-batches", c.weight_dump_batches,
                                        "batches (steps) of the weight dump of --weight-dump-step")
                             ->check(at_least(1))
                             ->capture_default_str();
    add_sweep_flags(
        app, c,
        {.seeds = "trials (clean split, noise, initialisation) per method; the paper uses 5",
         .eval_every = "evaluate on the test set every N steps (0: only at the end)",
         .out = "output directory: results.csv, checkpoints, figures, weight dumps",
         .checkpoint_every = "save model, optimizer and running sums to "
                             "OUT/ckpt_<method>_seed<s>.l2ck (and ckpt_<method>+ft_seed<s>.l2ck; "
                             "with several --ratio values ckpt_<method>_<ratio>_seed<s>.l2ck) "
                             "every N steps and at the end (0: never)",
         .resume = "continue every run from its checkpoint in OUT when there is one; a "
                   "checkpoint made with other settings is refused"});
    auto* dataset = app.get_option("--dataset");
    return [&c, dataset, steps, dump_batches] {
        c.dataset_given = dataset->count() > 0;
        c.steps_given = steps->count() > 0;
        c.weight_dump_batches_given = dump_batches->count() > 0;
    };
}

/// The data of every run, loaded once, normalised, with the clean set's size.
struct Data {
    std::string name, dir;
    bool fashion = false, per_class = false;
    index_t clean_n = 0;
    data::Dataset train, test;
};

inline Data load_data(const Config& c) {
    Data d;
    if (c.data_dir.empty()) {
        const auto dir = default_fashion_mnist_dir();
        if (!dir) {
            std::printf(
                "noisy_labels: no --data DIR given and no Fashion-MNIST found (Debian package "
                "dataset-fashion-mnist); nothing to run.\n");
            std::exit(exit_skip);
        }
        d.fashion = true;
        d.name = "Fashion-MNIST";
        d.dir = dir->string();
        d.train = data::load_fashion_mnist(d.dir, true);
        d.test = data::load_fashion_mnist(d.dir, false);
    } else {
        d.dir = c.data_dir;
        d.name = c.dataset == "cifar10" ? "CIFAR-10" : "CIFAR-100";
        d.train = c.dataset == "cifar10" ? data::load_cifar10(d.dir, true)
                                         : data::load_cifar100(d.dir, true);
        d.test = c.dataset == "cifar10" ? data::load_cifar10(d.dir, false)
                                        : data::load_cifar100(d.dir, false);
    }
    auto too_many = [&](const char* flag, index_t want, index_t have, const char* what) {
        throw FlagError(format("%s %ld: %s has %ld %s images", flag, static_cast<long>(want),
                               d.name.c_str(), static_cast<long>(have), what));
    };
    if (c.train_size > d.train.n) too_many("--train-size", c.train_size, d.train.n, "training");
    if (c.test_size > d.test.n) too_many("--test-size", c.test_size, d.test.n, "test");
    if (c.train_size > 0 && c.train_size < d.train.n) {
        Rng rng(derive_seed(c.first_seed, 0x75));
        auto rows = data::choose(data::iota_indices(d.train.n), c.train_size, rng);
        std::sort(rows.begin(), rows.end());
        d.train = d.train.subset(rows);
    }
    if (c.test_size > 0 && c.test_size < d.test.n)
        d.test = d.test.subset(data::iota_indices(c.test_size));

    const bool uniform = c.noise == "uniform";
    d.per_class = c.clean_per_class >= 0 || (c.clean < 0 && !uniform);
    const index_t per = c.clean_per_class >= 0 ? c.clean_per_class : 10;
    d.clean_n = d.per_class ? per * d.train.classes : (c.clean >= 0 ? c.clean : 1000);
    const std::string clean_flag =
        d.per_class ? format("--clean-per-class %ld%s", static_cast<long>(per),
                             c.clean_per_class < 0 ? " (the default for background noise)" : "")
                    : format("--clean %ld%s", static_cast<long>(d.clean_n),
                             c.clean < 0 ? " (the default for uniform noise)" : "");
    const auto counts = d.train.class_counts();
    if (d.per_class) {
        for (std::size_t k = 0; k < counts.size(); ++k)
            if (counts[k] <= per)
                throw FlagError(
                    format("%s: class %zu has only %ld training images; lower it or "
                           "raise --train-size",
                           clean_flag.c_str(), k, static_cast<long>(counts[k])));
    } else if (d.clean_n < d.train.classes) {
        throw FlagError(
            format("%s: the clean set is spread over the %ld classes, so it needs at "
                   "least %ld images",
                   clean_flag.c_str(), static_cast<long>(d.train.classes),
                   static_cast<long>(d.train.classes)));
    }
    if (d.clean_n + c.batch > d.train.n)
        throw FlagError(format("%s and --batch %ld need more than the %ld training images%s",
                               clean_flag.c_str(), static_cast<long>(c.batch),
                               static_cast<long>(d.train.n),
                               c.train_size > 0 ? " of --train-size" : ""));
    // Per-channel normalisation with the training images' statistics (labels play no part).
    const auto stats = data::channel_stats(d.train);
    data::normalize(d.train, stats);
    data::normalize(d.test, stats);
    return d;
}

/// One phase of one run: a method's training, or the fine-tuning after it.
struct Phase {
    std::string label;
    fs::path checkpoint;
    io::Metadata definition;
    std::optional<std::int64_t> resume_at;
    std::int64_t steps = 0;
    std::size_t sweep_index = 0;
};

struct PhaseResult {
    meta::TrainSummary summary;
    double seconds = 0;         // training, all sessions, without the evaluations
    double flipped_share = -1;  // mean share of a batch's weight on flipped labels
    std::int64_t skipped = 0;   // all sessions
};

/// Trains one phase with progress, periodic evaluation and checkpoints; the share of weight
/// on flipped examples, the skip count and the time so far travel in the checkpoint. With a
/// `dump`, the weights of its steps are recorded, written and summed up.
inline PhaseResult run_phase(const Config& c, const Phase& ph, Model& model, optim::SGD<T, B>& opt,
                             meta::WeightingPolicy<Model>& policy, const data::Dataset& train,
                             const data::Dataset& clean, const data::Dataset& test,
                             meta::TrainOptions o, Sweep& sweep, WeightDump* dump = nullptr) {
    const std::int64_t first =
        c.resume ? announce_resume(ph.checkpoint, ph.label, ph.resume_at, ph.steps) : 0;
    o.steps = c.session_steps > 0 ? std::min(ph.steps, first + c.session_steps) : ph.steps;
    RowRecorder<Model> recorder(policy);  // the batch's rows, for the dump
    if (dump)
        if (const auto note = dump->begin(first, o.steps); !note.empty())
            std::printf("%s %s\n", ph.label.c_str(), note.c_str());
    o.eval_every = c.eval_every;
    o.checkpoint_every = c.checkpoint_every;
    o.resume = c.resume;
    o.run = ph.definition;
    if (c.checkpoint_every > 0 || c.resume) o.checkpoint_path = ph.checkpoint;
    Progress progress(ph.label, ph.steps, first, c.progress_every, &sweep, ph.sweep_index);
    double mass = 0, eval_seconds = 0, last_acc = -1, seconds_before = 0;
    std::int64_t mass_steps = 0, skipped = 0;
    meta::Callbacks<T> cb;
    cb.on_step = [&](std::int64_t s, const meta::StepReport<T>& rep, double loss) {
        skipped += rep.skipped;
        if (dump && dump->wants(s)) dump->record(s, recorder.rows(), rep.weights, train);
        if (rep.noisy_mass && !rep.skipped) {
            mass += *rep.noisy_mass;
            ++mass_steps;
        }
        progress.step(s + 1, loss,
                      last_acc < 0 ? std::string{} : format("test acc %.2f%%", 100 * last_acc));
    };
    cb.on_eval = [&](std::int64_t done) {
        const Stopwatch ew;
        const auto ev = meta::evaluate(model, test, 500);
        eval_seconds += ew.seconds();
        last_acc = ev.accuracy;
        std::string line = format("step %lld: test accuracy %.2f%%", static_cast<long long>(done),
                                  100 * ev.accuracy);
        if (mass_steps > 0)
            line += format(", weight on flipped labels so far %.1f%%",
                           100 * mass / static_cast<double>(mass_steps));
        progress.note(line);
    };
    // The running sums a checkpoint keeps, visited alike to save (put) and restore (get).
    auto sums = [&](auto&& io) {
        io("flipped_mass", mass);
        io("flipped_steps", mass_steps);
        io("skipped", skipped);
        io("last_accuracy", last_acc);
    };
    cb.on_checkpoint = [&] {
        State st;
        sums([&](const char* k, const auto& v) { st.put(k, v); });
        st.put("seconds", seconds_before + progress.seconds() - eval_seconds);
        return st.metadata();
    };
    cb.on_resume = [&](const io::Metadata& m) {
        const State st(m);
        sums([&](const char* k, auto& v) { st.get(k, v); });
        st.get("seconds", seconds_before);
    };
    PhaseResult r;
    r.summary = meta::train(model, opt, dump ? recorder : policy, train, clean, o, cb);
    progress.finish();
    if (dump) {
        dump->write();
        if (!dump->rows().empty()) print_zero_weight_stats(ph.label, *dump);
    }
    if (r.summary.steps_done < ph.steps) sweep.drop(ph.sweep_index);
    r.seconds = seconds_before + progress.seconds() - eval_seconds;
    r.skipped = skipped;
    if (mass_steps > 0) r.flipped_share = mass / static_cast<double>(mass_steps);
    return r;
}

}  // namespace examples::noisy
