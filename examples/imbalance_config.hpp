// examples/imbalance_config.hpp — examples/mnist_imbalance.cpp's flags: its Config, the
// flags that set it, and the checks that need more than one flag (examples/flags.hpp has the
// checks of one flag). Not part of the library.
#pragma once

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <l2rw/l2rw.hpp>
#include <string>
#include <vector>

#include "common.hpp"
#include "flags.hpp"

namespace examples::imbalance {

using namespace l2rw;
using T = float;
using B = Cpu;
using Model = nn::Sequential<T, B>;
namespace fs = std::filesystem;

struct Config : SweepConfig {
    Config() {
        seeds = 5;
        eval_every = 1000;
        out = default_out_dir("mnist_imbalance_out");
    }
    std::string data_dir;
    std::vector<index_t> classes;  // minority, majority; empty: 4,9 on MNIST, 4,6 on Fashion
    index_t train_size = 5000;
    std::vector<double> proportions{0.9, 0.95, 0.98, 0.99, 0.995};
    index_t clean = 10;
    std::int64_t steps = 8000;
    index_t batch = 100;
    double lr = 1e-3, momentum = 0.9;
    std::vector<std::string> methods{"uniform",     "proportion", "resample",
                                     "hard_mining", "random",     "l2rw"};
};

inline std::string pstr(double p) { return format("%g", p); }

inline void add_flags(CLI::App& app, Config& c) {
    app.add_option("--data", c.data_dir,
                   "directory of the MNIST IDX files (train-images-idx3-ubyte[.gz], ...); "
                   "default: Fashion-MNIST from the system");
    app.add_option("--classes", c.classes,
                   "MINORITY,MAJORITY, two different classes in 0..9, the minority first; it "
                   "becomes label 0 and the majority label 1 (the sigmoid's positive class). "
                   "Default: the paper's 4,9 on MNIST; on Fashion-MNIST 4,6 (Coat vs Shirt, which "
                   "look alike: its 4 vs 9, Coat vs Ankle boot, is trivial)")
        ->delimiter(',')
        ->expected(2);
    app.add_option("--train-size", c.train_size,
                   "training images per run before the clean split (the paper: 5000)")
        ->check(at_least(2))
        ->capture_default_str();
    app.add_option("--proportions", c.proportions,
                   "majority-class proportions p in (0.5, 1), comma-separated (a column each)")
        ->delimiter(',')
        ->check(open_interval(0.5, 1))
        ->capture_default_str();
    app.add_option("--clean", c.clean,
                   "clean validation images split off the training set, half of each class (the "
                   "paper: 10, i.e. 5 per class); even, at least 2")
        ->check(at_least(2))
        ->capture_default_str();
    app.add_option("--steps", c.steps, "SGD steps per run (the paper: 8000)")
        ->check(at_least(1))
        ->capture_default_str();
    app.add_option("--batch", c.batch, "minibatch size (the paper: 100)")
        ->check(at_least(1))
        ->capture_default_str();
    app.add_option("--lr", c.lr, "SGD learning rate (the paper: 1e-3)")
        ->check(greater_than(0))
        ->capture_default_str();
    app.add_option("--momentum", c.momentum, "SGD momentum, in [0, 1)")
        ->check(from_below(0, 1))
        ->capture_default_str();
    app.add_option("--methods", c.methods,
                   "weighting methods, comma-separated: uniform, proportion, resample, "
                   "hard_mining, random, l2rw (also reed_soft, reed_hard)")
        ->delimiter(',')
        ->capture_default_str();
    add_sweep_flags(
        app, c,
        {.seeds = "runs (random splits and initialisations) per method and proportion; the paper "
                  "averages 10, the default is 5 to halve the time",
         .eval_every = "evaluate on the test set, and report the zero-weight examples, every N "
                       "steps and after the last (0: after the last only)",
         .out = "output directory: results.csv, evals.csv, figure2.{gp,png}, checkpoints",
         .checkpoint_every = "save each run's model, optimizer and running sums to "
                             "OUT/ckpt_<method>_p<p>_seed<s>.l2ck every N steps and at the end "
                             "(0: never)",
         .resume = "continue every run from its checkpoint in OUT when there is one (a finished "
                   "run is only evaluated again); a checkpoint made with other settings is "
                   "refused"});
}

/// The majority images of a run at proportion p, as data::imbalanced_binary counts them.
inline index_t majority_count(const Config& c, double p) {
    return data::detail::round_count(p, c.train_size);
}

/// The checks that need more than one flag; throws FlagError before anything is printed.
inline void check_flags(Config& c) {
    if (!c.classes.empty()) {
        for (index_t k : c.classes)
            if (k < 0 || k > 9)
                throw FlagError("--classes: " + std::to_string(k) +
                                " is not a class of MNIST or Fashion-MNIST (0..9)");
        if (c.classes[0] == c.classes[1])
            throw FlagError("--classes wants two different classes, got " +
                            std::to_string(c.classes[0]) + " twice");
    }
    for (auto& m : c.methods) std::replace(m.begin(), m.end(), '-', '_');
    for (const auto& m : c.methods) check_method(m);
    require_distinct(c.methods, "--methods", [](const std::string& m) { return "'" + m + "'"; });
    require_distinct(c.proportions, "--proportions", pstr);
    if (c.clean % 2)
        throw FlagError("--clean " + std::to_string(c.clean) +
                        ": the clean set is half minority, half majority, so it must be even");
    const index_t half = c.clean / 2;
    for (double p : c.proportions) {
        const index_t major = majority_count(c, p);
        const index_t minor = c.train_size - major;
        if (minor <= half || major <= half)
            throw FlagError(format(
                "--train-size %ld at p=%s gives %ld minority images, and the clean set takes %ld "
                "of them, leaving none to train on: raise --train-size or lower --clean",
                static_cast<long>(c.train_size), pstr(p).c_str(), static_cast<long>(minor),
                static_cast<long>(half)));
    }
    if (c.batch > c.train_size - c.clean)
        throw FlagError(
            format("--batch %ld is larger than the %ld training images of a run "
                   "(--train-size %ld less --clean %ld)",
                   static_cast<long>(c.batch), static_cast<long>(c.train_size - c.clean),
                   static_cast<long>(c.train_size), static_cast<long>(c.clean)));
    check_sweep_flags(c);
}

}  // namespace examples::imbalance
