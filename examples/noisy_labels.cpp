// examples/noisy_labels.cpp — the noisy-label experiments of Ren et al. (2018), §4.2, Tables 1
// and 2: CIFAR-10/100 training labels corrupted by UniformFlip (to any other class) or
// BackgroundFlip (to one background class), a small clean validation set split off the
// training set (1,000 images for UniformFlip, 10 per class for BackgroundFlip), ResNet-32 (or
// WRN-28-10, or LeNet) trained by SGD (lr 0.1, momentum 0.9, weight decay 5e-4, batch 100,
// ×0.1 at 40k and 60k of 80k steps) under each weighting method, and the "+FT" variants that
// fine-tune the trained model on the clean set. Reports test accuracy (mean ± std over seeds),
// the share of the weight that went to examples with flipped labels, and the time.
//
//   noisy_labels --data ~/cifar-10-batches-bin --noise uniform --model wrn28-10
//   noisy_labels --noise background --steps 2000 --methods uniform,l2rw,uniform+ft
#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <l2rw/l2rw.hpp>
#include <map>
#include <string>
#include <vector>

#include "common.hpp"

using namespace l2rw;
using T = float;
using B = Cpu;
using Model = nn::Sequential<T, B>;
namespace fs = std::filesystem;

namespace {

struct Config {
    std::string data_dir, dataset = "cifar10", noise = "uniform", model = "resnet32";
    double ratio = 0.4;
    index_t clean = -1, clean_per_class = -1, background_class = -1;
    index_t train_size = 0, test_size = 0;
    std::vector<std::string> methods{"uniform", "reed_soft",  "reed_hard", "random",
                                     "l2rw",    "uniform+ft", "random+ft"};
    std::int64_t steps = 0, ft_steps = -1;
    double lr = 0.1, momentum = 0.9, weight_decay = 5e-4, ft_lr = -1;
    index_t batch = 100;
    std::string augment = "auto";
    int seeds = 1;
    std::uint64_t first_seed = 1;
    std::int64_t eval_every = 2000, log_every = 200, checkpoint_every = 0;
    bool resume = false;
    std::string out = "noisy_labels_out";
};

struct RunResult {
    std::string method;
    std::uint64_t seed = 0;
    index_t background = -1;
    double accuracy = 0, loss = 0, seconds = 0, flipped_share = -1;
    std::int64_t steps_run = 0, first_step = 0, ft_steps_run = 0, skipped = 0;
};

/// The paper's full schedule for a model: total steps and the two decay points.
struct Schedule {
    std::int64_t total;
    std::int64_t decay1, decay2;
};
Schedule paper_schedule(const std::string& model) {
    if (model == "wrn28-10") return {60000, 40000, 50000};
    return {80000, 40000, 60000};  // ResNet-32 (and LeNet, by the same rule)
}

std::shared_ptr<Model> make_model(const Config& c, const data::Dataset& ds, std::uint64_t seed) {
    if (c.model == "resnet32")
        return nn::resnet_cifar<T, B>(32, ds.classes, seed, nn::Shortcut::pad, ds.c);
    if (c.model == "wrn28-10") return nn::wide_resnet<T, B>(28, 10, 0.3, ds.classes, seed, ds.c);
    if (c.model == "lenet") return nn::lenet<T, B>(nn::LeNetOptions{ds.c, ds.h, ds.classes}, seed);
    throw ValueError("--model: unknown model '" + c.model + "' (resnet32, wrn28-10, lenet)");
}

/// One phase of training (the method, or the fine-tuning after it) with progress, periodic
/// evaluation, checkpoints and the share of weight on flipped examples.
struct PhaseResult {
    meta::TrainSummary summary;
    double seconds = 0;  // without the evaluations
    double flipped_share = -1;
};

PhaseResult run_phase(const Config& c, const std::string& label, Model& model,
                      optim::SGD<T, B>& opt, meta::WeightingPolicy<Model>& policy,
                      const data::Dataset& train, const data::Dataset& clean,
                      const data::Dataset& test, meta::TrainOptions o, const fs::path& ckpt) {
    o.eval_every = c.eval_every;
    o.checkpoint_every = c.checkpoint_every;
    o.resume = c.resume;
    if (c.checkpoint_every > 0 || c.resume) o.checkpoint_path = ckpt;
    std::int64_t first = 0;
    if (c.resume) first = examples::resume_step(ckpt, label, o.steps);
    examples::Progress progress(label, o.steps, first, c.log_every);
    double mass = 0, eval_seconds = 0, last_acc = -1;
    std::int64_t mass_steps = 0;
    meta::Callbacks<T> cb;
    cb.on_step = [&](std::int64_t s, const meta::StepReport<T>& rep, double loss) {
        if (rep.noisy_mass && !rep.skipped) {
            mass += *rep.noisy_mass;
            ++mass_steps;
        }
        progress.step(
            s + 1, loss,
            last_acc < 0 ? std::string{} : examples::format("test acc %.2f%%", 100 * last_acc));
    };
    cb.on_eval = [&](std::int64_t done) {
        const examples::Stopwatch ew;
        const auto ev = meta::evaluate(model, test, 500);
        eval_seconds += ew.seconds();
        last_acc = ev.accuracy;
        std::string line = examples::format("step %lld: test accuracy %.2f%%",
                                            static_cast<long long>(done), 100 * ev.accuracy);
        if (mass_steps > 0)
            line += examples::format(", weight on flipped labels so far %.1f%%",
                                     100 * mass / static_cast<double>(mass_steps));
        progress.note(line);
    };
    PhaseResult r;
    r.summary = meta::train(model, opt, policy, train, clean, o, cb);
    progress.finish();
    r.seconds = progress.seconds() - eval_seconds;
    if (mass_steps > 0) r.flipped_share = mass / static_cast<double>(mass_steps);
    return r;
}

void write_results(const Config& c, const std::vector<RunResult>& runs,
                   const std::string& dataset_name, index_t clean_n, double flipped_fraction) {
    std::vector<std::vector<std::string>> rows;
    for (const auto& r : runs)
        rows.push_back(
            {r.method, std::to_string(r.seed), dataset_name, c.model, c.noise,
             examples::format("%g", c.ratio), std::to_string(r.background), std::to_string(clean_n),
             examples::format("%.6f", flipped_fraction), examples::format("%.6f", r.accuracy),
             examples::format("%.6f", r.loss),
             r.flipped_share < 0 ? std::string{} : examples::format("%.6f", r.flipped_share),
             std::to_string(r.first_step), std::to_string(r.steps_run),
             std::to_string(r.ft_steps_run), std::to_string(r.skipped),
             examples::format("%.3f", r.seconds),
             examples::format("%.6f",
                              r.steps_run + r.ft_steps_run > 0
                                  ? r.seconds / static_cast<double>(r.steps_run + r.ft_steps_run)
                                  : 0.0)});
    examples::write_csv(fs::path(c.out) / "results.csv",
                        {"method", "seed", "dataset", "model", "noise", "ratio", "background_class",
                         "clean_size", "flipped_fraction", "test_accuracy", "test_loss",
                         "flipped_weight_share", "resumed_from_step", "steps_run", "ft_steps_run",
                         "skipped_batches", "seconds", "seconds_per_step"},
                        rows);
}

int run(Config c) {
    // ---- options -------------------------------------------------------------------------
    if (c.noise != "uniform" && c.noise != "background")
        throw ValueError("--noise must be uniform or background, got '" + c.noise + "'");
    if (c.dataset != "cifar10" && c.dataset != "cifar100")
        throw ValueError("--dataset must be cifar10 or cifar100, got '" + c.dataset + "'");
    if (c.clean >= 0 && c.clean_per_class >= 0)
        throw ValueError("give --clean or --clean-per-class, not both");
    struct Variant {
        std::string base;
        bool plain = false, ft = false;
    };
    std::vector<Variant> plan;  // one training per base method, in the order first named
    for (auto m : c.methods) {
        std::transform(m.begin(), m.end(), m.begin(), [](unsigned char ch) {
            return static_cast<char>(ch == '-' ? '_' : std::tolower(ch));
        });
        const bool ft = m.size() > 3 && m.substr(m.size() - 3) == "+ft";
        const std::string base = ft ? m.substr(0, m.size() - 3) : m;
        (void)meta::make_policy<Model>(base);  // unknown names fail now
        auto it = std::find_if(plan.begin(), plan.end(),
                               [&](const Variant& v) { return v.base == base; });
        if (it == plan.end()) it = plan.insert(plan.end(), Variant{base});
        (ft ? it->ft : it->plain) = true;
    }
    const Schedule full = paper_schedule(c.model);
    if (c.steps <= 0) c.steps = full.total;
    const double scale = static_cast<double>(c.steps) / static_cast<double>(full.total);
    std::vector<std::int64_t> decays;
    for (auto d : {full.decay1, full.decay2}) {
        const auto k = std::llround(static_cast<double>(d) * scale);
        if (k > 0 && k < c.steps && (decays.empty() || k > decays.back())) decays.push_back(k);
    }
    const optim::PiecewiseConstant schedule(c.lr, decays, 0.1);
    if (c.ft_steps < 0)
        c.ft_steps = std::max<std::int64_t>(1, std::llround(5000 * std::min(1.0, scale)));
    if (c.ft_lr < 0) c.ft_lr = c.lr * 0.01;  // the rate the schedule ends at

    // ---- data ----------------------------------------------------------------------------
    std::string dataset_name;
    data::Dataset train_all, test;
    bool fashion = false;
    if (c.data_dir.empty()) {
        const auto d = examples::default_fashion_mnist_dir();
        if (!d) {
            std::printf(
                "noisy_labels: no --data DIR given and no Fashion-MNIST found (Debian package "
                "dataset-fashion-mnist); nothing to run.\n");
            return examples::exit_skip;
        }
        fashion = true;
        dataset_name = "Fashion-MNIST";
        std::printf(
            "No --data given: using Fashion-MNIST (28x28x1, 10 classes) from %s in place of "
            "CIFAR.\n",
            d->string().c_str());
        train_all = data::load_fashion_mnist(d->string(), true);
        test = data::load_fashion_mnist(d->string(), false);
    } else if (c.dataset == "cifar10") {
        dataset_name = "CIFAR-10";
        train_all = data::load_cifar10(c.data_dir, true);
        test = data::load_cifar10(c.data_dir, false);
    } else {
        dataset_name = "CIFAR-100";
        train_all = data::load_cifar100(c.data_dir, true);
        test = data::load_cifar100(c.data_dir, false);
    }
    if (c.train_size > 0 && c.train_size < train_all.n) {
        Rng rng(examples::derive_seed(c.first_seed, 0x75));
        auto rows = data::choose(data::iota_indices(train_all.n), c.train_size, rng);
        std::sort(rows.begin(), rows.end());
        train_all = train_all.subset(rows);
    }
    if (c.test_size > 0 && c.test_size < test.n)
        test = test.subset(data::iota_indices(c.test_size));
    // Per-channel normalisation with the training images' statistics (labels play no part).
    const auto stats = data::channel_stats(train_all);
    data::normalize(train_all, stats);
    data::normalize(test, stats);
    const bool augment = c.augment == "auto" ? !fashion : c.augment == "on";
    if (c.augment != "auto" && c.augment != "on" && c.augment != "off")
        throw ValueError("--augment must be auto, on or off, got '" + c.augment + "'");
    const bool uniform_noise = c.noise == "uniform";
    const bool per_class = c.clean_per_class >= 0 || (c.clean < 0 && !uniform_noise);
    const index_t clean_n =
        per_class ? (c.clean_per_class >= 0 ? c.clean_per_class : 10) * train_all.classes
                  : (c.clean >= 0 ? c.clean : 1000);
    const std::vector<index_t> paper_backgrounds = train_all.classes == 100
                                                       ? std::vector<index_t>{7, 12, 41, 62, 85}
                                                       : std::vector<index_t>{0, 1, 3, 5, 7};

    std::printf(
        "%s: %ld training images (%ld of them clean validation%s), %ld test; %s noise, ratio "
        "%g\n"
        "%s, SGD lr %g momentum %g weight decay %g (our choice: the paper gives none), batch "
        "%ld, %lld steps, lr x0.1 at",
        dataset_name.c_str(), static_cast<long>(train_all.n), static_cast<long>(clean_n),
        per_class
            ? examples::format(", %ld per class", static_cast<long>(clean_n / train_all.classes))
                  .c_str()
            : "",
        static_cast<long>(test.n), uniform_noise ? "UniformFlip" : "BackgroundFlip", c.ratio,
        c.model.c_str(), c.lr, c.momentum, c.weight_decay, static_cast<long>(c.batch),
        static_cast<long long>(c.steps));
    for (auto d : decays) std::printf(" %lld", static_cast<long long>(d));
    if (decays.empty()) std::printf(" (none)");
    std::printf("; augmentation (pad 4, crop, flip) %s\n", augment ? "on" : "off");
    bool any_ft = false;
    for (const auto& v : plan) any_ft = any_ft || v.ft;
    if (any_ft)
        std::printf(
            "+FT: %lld steps on the clean set alone, SGD lr %g momentum %g weight decay %g "
            "(fresh momentum)\n",
            static_cast<long long>(c.ft_steps), c.ft_lr, c.momentum, c.weight_decay);
    fs::create_directories(c.out);

    // ---- runs ----------------------------------------------------------------------------
    std::vector<RunResult> runs;
    std::size_t total = 0;
    for (const auto& v : plan) total += static_cast<std::size_t>(v.plain) + v.ft;
    total *= static_cast<std::size_t>(c.seeds);
    std::size_t run_no = 0;
    double flipped_fraction = 0;
    examples::Stopwatch all;
    for (int r = 0; r < c.seeds; ++r) {
        const std::uint64_t seed = c.first_seed + static_cast<std::uint64_t>(r);
        Rng rng(examples::derive_seed(seed, 0x2c));
        const auto split = per_class
                               ? data::split_clean_validation(
                                     train_all, data::PerClass{clean_n / train_all.classes}, rng)
                               : data::split_clean_validation(train_all, data::Total{clean_n}, rng);
        const index_t bg =
            uniform_noise
                ? -1
                : (c.background_class >= 0
                       ? c.background_class
                       : paper_backgrounds[static_cast<std::size_t>(r) % paper_backgrounds.size()]);
        const data::Dataset train = uniform_noise
                                        ? data::uniform_flip(split.train, c.ratio, rng)
                                        : data::background_flip(split.train, c.ratio, bg, rng);
        const data::Dataset& clean = split.val;
        flipped_fraction =
            static_cast<double>(std::count(train.noisy.begin(), train.noisy.end(), true)) /
            static_cast<double>(train.n);
        if (!uniform_noise)
            std::printf(
                "seed %llu: background class %ld%s\n", static_cast<unsigned long long>(seed),
                static_cast<long>(bg),
                fashion ? examples::format(" (%s)", examples::fashion_class_name(bg)).c_str() : "");

        for (const auto& v : plan) {
            const std::string tag = v.base + "_seed" + std::to_string(seed);
            auto model = make_model(c, train, examples::derive_seed(seed, 0x4d));
            optim::SGD<T, B> opt(
                {.lr = c.lr, .momentum = c.momentum, .weight_decay = c.weight_decay});
            meta::PolicyConfig pc;
            pc.seed = examples::derive_seed(seed, 0x90);
            auto policy = meta::make_policy<Model>(v.base, pc);
            meta::TrainOptions o;
            o.steps = c.steps;
            o.batch_size = c.batch;
            o.validation_batch_size = 100;
            o.seed = examples::derive_seed(seed, 0x7e);
            o.lr_schedule = schedule;
            if (augment)
                o.augment = [](data::Dataset& b, Rng& g) {
                    data::augment_crop_flip(b, g, 4, true);
                };
            // The label counts the plain result when it is asked for, else the run it feeds.
            const std::string label =
                examples::format("[%zu/%zu] %s seed %llu", run_no + 1, total,
                                 (v.plain ? v.base : v.base + " (for +ft)").c_str(),
                                 static_cast<unsigned long long>(seed));
            const auto p = run_phase(c, label, *model, opt, *policy, train, clean, test, o,
                                     fs::path(c.out) / ("ckpt_" + tag + ".l2ck"));
            RunResult res;
            res.method = v.base;
            res.seed = seed;
            res.background = bg;
            res.seconds = p.seconds;
            res.flipped_share = p.flipped_share;
            res.first_step = p.summary.first_step;
            res.steps_run = p.summary.steps_done - p.summary.first_step;
            res.skipped = p.summary.skipped;
            auto report = [&](const RunResult& x) {
                const auto n = x.steps_run + x.ft_steps_run;
                std::printf("%s seed %llu: test accuracy %.2f%%", x.method.c_str(),
                            static_cast<unsigned long long>(x.seed), 100 * x.accuracy);
                if (x.flipped_share >= 0)
                    std::printf(", weight on flipped labels %.1f%%", 100 * x.flipped_share);
                std::printf("  (%lld steps in %.1f s, %.1f ms/step)\n", static_cast<long long>(n),
                            x.seconds, n ? 1e3 * x.seconds / static_cast<double>(n) : 0.0);
                std::fflush(stdout);
            };
            if (v.plain) {
                ++run_no;
                const auto ev = meta::evaluate(*model, test, 500);
                res.accuracy = ev.accuracy;
                res.loss = ev.loss;
                report(res);
                runs.push_back(res);
                write_results(c, runs, dataset_name, clean.n, flipped_fraction);
            }
            if (v.ft) {
                ++run_no;
                optim::SGD<T, B> ft_opt(
                    {.lr = c.ft_lr, .momentum = c.momentum, .weight_decay = c.weight_decay});
                meta::Uniform<Model> uniform;
                meta::TrainOptions fo;  // what meta::fine_tune does, plus checkpoints
                fo.steps = c.ft_steps;
                fo.batch_size = c.batch;
                fo.seed = examples::derive_seed(seed, 0xf7);
                const std::string ft_label =
                    examples::format("[%zu/%zu] %s+ft seed %llu (fine-tuning)", run_no, total,
                                     v.base.c_str(), static_cast<unsigned long long>(seed));
                const fs::path ft_ckpt = fs::path(c.out) / ("ckpt_" + v.base + "+ft_seed" +
                                                            std::to_string(seed) + ".l2ck");
                if (c.resume && res.steps_run > 0 && io::checkpoint_exists(ft_ckpt)) {
                    // The run it fine-tunes has moved on: the old fine-tuning is stale.
                    std::printf("%s: %s trained further, discarding the stale checkpoint %s\n",
                                ft_label.c_str(), v.base.c_str(), ft_ckpt.string().c_str());
                    fs::remove(ft_ckpt);
                }
                const auto q = run_phase(c, ft_label, *model, ft_opt, uniform, clean,
                                         data::Dataset{}, test, fo, ft_ckpt);
                RunResult f = res;
                f.method = v.base + "+ft";
                f.seconds += q.seconds;
                f.ft_steps_run = q.summary.steps_done - q.summary.first_step;
                const auto ev = meta::evaluate(*model, test, 500);
                f.accuracy = ev.accuracy;
                f.loss = ev.loss;
                report(f);
                runs.push_back(f);
                write_results(c, runs, dataset_name, clean.n, flipped_fraction);
            }
        }
    }

    // ---- summary -------------------------------------------------------------------------
    std::printf(
        "\nTest accuracy (%%), mean ± std over %d seed(s): %s, %s, %s noise %g, %ld clean "
        "images, %lld steps\n",
        c.seeds, dataset_name.c_str(), c.model.c_str(),
        uniform_noise ? "UniformFlip" : "BackgroundFlip", c.ratio, static_cast<long>(clean_n),
        static_cast<long long>(c.steps));
    examples::Table table({"method", "test acc %", "flipped weight %", "s/step", "time"});
    std::vector<std::string> order;
    for (const auto& r : runs)
        if (std::find(order.begin(), order.end(), r.method) == order.end())
            order.push_back(r.method);
    for (const auto& m : order) {
        std::vector<double> acc, share;
        double secs = 0;
        std::int64_t n = 0;
        for (const auto& r : runs)
            if (r.method == m) {
                acc.push_back(r.accuracy);
                if (r.flipped_share >= 0) share.push_back(r.flipped_share);
                secs += r.seconds;
                n += r.steps_run + r.ft_steps_run;
            }
        const auto a = examples::mean_std(acc);
        const auto s = examples::mean_std(share);
        table.add({m, examples::format("%.2f ± %.2f", 100 * a.mean, 100 * a.stddev),
                   share.empty() ? "-" : examples::format("%.1f", 100 * s.mean),
                   n ? examples::format("%.4f", secs / static_cast<double>(n)) : "-",
                   examples::format_duration(secs)});
    }
    table.print();
    std::printf(
        "Flipped labels: %.1f%% of the training set. \"flipped weight\" is the mean share of a "
        "batch's weight on them (uniform weights give about that fraction).\n"
        "Results: %s\nTotal time %s\n",
        100 * flipped_fraction, (fs::path(c.out) / "results.csv").string().c_str(),
        examples::format_duration(all.seconds()).c_str());
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    Config c;
    CLI::App app{
        "Noisy labels (Ren et al. 2018, sec. 4.2, Tables 1 and 2): CIFAR-10/100 with UniformFlip "
        "or BackgroundFlip label noise, a small clean validation set, each example-weighting "
        "method and the +FT (fine-tune on the clean set) variants. Without --data it runs on "
        "Fashion-MNIST (Debian's dataset-fashion-mnist) and says so."};
    app.add_option("--data", c.data_dir,
                   "directory of the CIFAR binary files (cifar-10-batches-bin or cifar-100-binary, "
                   "or their parent); default: Fashion-MNIST from the system");
    app.add_option("--dataset", c.dataset, "cifar10 or cifar100 (with --data)")
        ->capture_default_str();
    app.add_option("--noise", c.noise,
                   "uniform (UniformFlip: to any other class) or background (BackgroundFlip: to "
                   "one background class)")
        ->capture_default_str();
    app.add_option("--ratio", c.ratio, "share of the training labels flipped")
        ->check(CLI::Range(0.0, 1.0))
        ->capture_default_str();
    app.add_option("--clean", c.clean,
                   "clean validation images in all, split off the training set, stratified "
                   "(default for uniform noise: 1000)");
    app.add_option("--clean-per-class", c.clean_per_class,
                   "clean validation images per class (default for background noise: 10)");
    app.add_option("--background-class", c.background_class,
                   "the background class of BackgroundFlip; default: the paper's per-trial "
                   "classes 0,1,3,5,7 (CIFAR-100: 7,12,41,62,85), one per seed in turn");
    app.add_option("--model", c.model,
                   "resnet32 (the paper's BackgroundFlip model), wrn28-10 (UniformFlip), or lenet")
        ->capture_default_str();
    app.add_option("--methods", c.methods,
                   "comma-separated: uniform, random, reed_soft, reed_hard, l2rw (also proportion, "
                   "resample, hard_mining); append +ft for the fine-tuned variant (uniform+ft = "
                   "the paper's Baseline +FT). A method and its +ft share one training run")
        ->delimiter(',')
        ->capture_default_str();
    app.add_option("--steps", c.steps,
                   "training steps; default the paper's 80000 (wrn28-10: 60000). The decay points "
                   "(40k/60k of 80k, 40k/50k of 60k) scale with it")
        ->check(CLI::NonNegativeNumber);
    app.add_option("--lr", c.lr, "initial learning rate")->capture_default_str();
    app.add_option("--momentum", c.momentum, "SGD momentum")->capture_default_str();
    app.add_option("--weight-decay", c.weight_decay,
                   "L2 weight decay (the paper uses weight decay without giving the value)")
        ->capture_default_str();
    app.add_option("--batch", c.batch, "minibatch size")
        ->check(CLI::PositiveNumber)
        ->capture_default_str();
    app.add_option("--ft-steps", c.ft_steps,
                   "+FT steps on the clean set; default the paper's 5000, scaled by steps / full "
                   "schedule when --steps is shorter");
    app.add_option("--ft-lr", c.ft_lr,
                   "+FT learning rate; default the rate the schedule ends at (lr x 0.01)");
    app.add_option("--augment", c.augment,
                   "pad-4 random crop and horizontal flip of training batches: auto (on for "
                   "CIFAR, off for Fashion-MNIST), on, off")
        ->capture_default_str();
    app.add_option("--train-size", c.train_size,
                   "use a random subset of this many training images (0: all)")
        ->check(CLI::NonNegativeNumber);
    app.add_option("--test-size", c.test_size, "evaluate on the first N test images (0: all)")
        ->check(CLI::NonNegativeNumber);
    app.add_option("--seeds", c.seeds,
                   "trials (clean split, noise, initialisation) per method; the paper uses 5")
        ->check(CLI::PositiveNumber)
        ->capture_default_str();
    app.add_option("--first-seed", c.first_seed, "seeds are first-seed, first-seed + 1, ...")
        ->capture_default_str();
    app.add_option("--eval-every", c.eval_every,
                   "evaluate on the test set every N steps (0: only at the end)")
        ->check(CLI::NonNegativeNumber)
        ->capture_default_str();
    app.add_option("--log-every", c.log_every,
                   "when stdout is not a terminal, a progress line every N steps")
        ->check(CLI::PositiveNumber)
        ->capture_default_str();
    app.add_option("--out", c.out, "output directory: results.csv and checkpoints")
        ->capture_default_str();
    app.add_option("--checkpoint-every", c.checkpoint_every,
                   "save model and optimizer to OUT/ckpt_<method>_seed<s>.l2ck (and "
                   "ckpt_<method>+ft_seed<s>.l2ck) every N steps and at the end (0: never)")
        ->check(CLI::NonNegativeNumber)
        ->capture_default_str();
    app.add_flag("--resume", c.resume,
                 "continue every run from its checkpoint in OUT when there is one");
    CLI11_PARSE(app, argc, argv);
    try {
        return run(c);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "noisy_labels: %s\n", e.what());
        return 1;
    }
}
