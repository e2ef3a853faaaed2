// examples/noisy_labels.cpp — the noisy-label experiments of Ren et al. (2018), §4.2-4.3,
// Tables 1 and 2, Figures 3 and 5: CIFAR-10/100 training labels corrupted by UniformFlip (to any
// other class) or BackgroundFlip (to one background class), a small clean validation set split off
// the training set (1,000 images for UniformFlip, 10 per class for BackgroundFlip), ResNet-32 (or
// WRN-28-10, or LeNet) trained by SGD (lr 0.1, momentum 0.9, weight decay 5e-4, batch 100,
// ×0.1 at 40k and 60k of 80k steps) under each weighting method, and the "+FT" variants that
// fine-tune the trained model on the clean set. Reports test accuracy (mean ± std over seeds),
// the share of the weight that went to examples with flipped labels, and the time. Several
// noise ratios (--ratio 0,0.1,...) give Figure 5, test accuracy against the ratio; a dump of
// the weights from a step on (--weight-dump-step) gives Figure 3, the weights of clean and of
// flipped examples. Every flag is checked, and every checkpoint to resume from, before
// anything is printed.
//
//   noisy_labels --data ~/cifar-10-batches-bin --noise uniform --model wrn28-10
//   noisy_labels --noise background --steps 2000 --methods uniform,l2rw,uniform+ft
//   noisy_labels --model lenet --steps 2000 --ratio 0,0.2,0.4 --methods uniform,l2rw
//   noisy_labels --model lenet --steps 2000 --weight-dump-step 1000 --methods l2rw
#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <l2rw/l2rw.hpp>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common.hpp"
#include "flags.hpp"
#include "noisy_finished.hpp"
#include "noisy_report.hpp"
#include "noisy_runs.hpp"
#include "progress.hpp"
#include "weight_dump.hpp"

using namespace l2rw;
using namespace examples::noisy;

namespace {

/// The paper's full schedule for a model: total steps and the two decay points.
struct Schedule {
    std::int64_t total;
    std::int64_t decay1, decay2;
};
Schedule paper_schedule(const std::string& model) {
    if (model == "wrn28-10") return {60000, 40000, 50000};
    return {80000, 40000, 60000};  // ResNet-32 (and LeNet, by the same rule)
}

// Seconds per step on Fashion-MNIST, batch 100, measured with this program on this project's
// 2-core machine (8 steps, 2 threads, g++ 12 -O3 -march=native, l2rw with a validation batch
// of 100): the estimate printed when the paper's full schedule starts. None for wrn28-10
// (a step took 50 s there with the machine shared, too noisy to quote). The first progress
// line measures the machine the program runs on.
struct StepCost {
    double plain, l2rw;
};
std::optional<StepCost> measured_step_cost(const std::string& model) {
    if (model == "resnet32") return StepCost{0.40, 1.08};
    if (model == "lenet") return StepCost{0.009, 0.022};
    return std::nullopt;
}

std::shared_ptr<Model> make_model(const Config& c, const data::Dataset& ds, std::uint64_t seed) {
    if (c.model == "resnet32")
        return nn::resnet_cifar<T, B>(32, ds.classes, seed, nn::Shortcut::pad, ds.c);
    if (c.model == "wrn28-10") return nn::wide_resnet<T, B>(28, 10, 0.3, ds.classes, seed, ds.c);
    return nn::lenet<T, B>(nn::LeNetOptions{ds.c, ds.h, ds.classes}, seed);
}

int run(Config c) {
    // ---- flags, data, and every checkpoint, before anything is printed --------------------
    const auto plan = plan_variants(c.methods);
    const Schedule full = paper_schedule(c.model);
    if (!c.steps_given) c.steps = full.total;
    check_flags(c, plan);
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
    const Data d = load_data(c);
    const bool uniform_noise = c.noise == "uniform";
    const bool augment = c.augment == "auto" ? !d.fashion : c.augment == "on";
    const std::vector<index_t> paper_backgrounds = d.train.classes == 100
                                                       ? std::vector<index_t>{7, 12, 41, 62, 85}
                                                       : std::vector<index_t>{0, 1, 3, 5, 7};
    auto background_of = [&](int r) {
        return uniform_noise ? index_t{-1}
               : c.background_class >= 0
                   ? c.background_class
                   : paper_backgrounds[static_cast<std::size_t>(r) % paper_backgrounds.size()];
    };
    // With several noise ratios, a run's ratio is in its file names and its messages.
    const bool by_ratio = c.ratios.size() > 1;
    auto file_tag = [&](double ratio) {
        return by_ratio ? "_" + examples::file_safe(ratio_str(ratio)) : std::string{};
    };
    auto label_tag = [&](double ratio) {
        return by_ratio ? " ratio " + ratio_str(ratio) : std::string{};
    };
    auto dump_file = [&](const std::string& method, double ratio, std::uint64_t seed) {
        return fs::path(c.out) /
               ("weights_" + method + "_" + examples::file_safe(ratio_str(ratio)) + "_seed" +
                std::to_string(seed) + ".csv");
    };
    // The phases: per ratio, per seed, per base method, its training and (when asked) its
    // fine-tuning.
    examples::Sweep sweep;
    std::vector<Phase> phases;
    std::size_t results = 0;
    for (const auto& v : plan) results += static_cast<std::size_t>(v.plain) + v.ft;
    results *= static_cast<std::size_t>(c.seeds) * c.ratios.size();
    const auto cost = measured_step_cost(c.model);
    const auto trials = c.ratios.size() * static_cast<std::size_t>(c.seeds);
    for (std::size_t t = 0; t < trials; ++t) {  // per ratio, per seed
        const double ratio = c.ratios[t / static_cast<std::size_t>(c.seeds)];
        const std::uint64_t seed = c.first_seed + t % static_cast<std::size_t>(c.seeds);
        const io::Metadata base = base_definition(c, d, ratio);
        for (const auto& v : plan) {
            for (const bool ft : {false, true}) {
                if (ft && !v.ft) continue;
                Phase ph;
                const std::string name = v.base + (ft ? "+ft" : "");
                ph.checkpoint = fs::path(c.out) / ("ckpt_" + name + file_tag(ratio) + "_seed" +
                                                   std::to_string(seed) + ".l2ck");
                ph.definition = base;
                ph.definition["method"] = name;
                ph.definition["seed"] = std::to_string(seed);
                if (ft) {
                    ph.definition["ft_steps"] = std::to_string(c.ft_steps);
                    ph.definition["ft_lr"] = examples::exact_str(c.ft_lr);
                }
                ph.steps = ft ? c.ft_steps : c.steps;
                if (c.resume)
                    ph.resume_at = examples::resume_point(ph.checkpoint, ph.definition, ph.steps);
                const std::int64_t first = ph.resume_at.value_or(0);
                ph.sweep_index = sweep.plan(
                    ft ? "ft" : v.base,
                    c.session_steps > 0 ? std::min(ph.steps, first + c.session_steps) : ph.steps,
                    first,
                    ft || v.base != "l2rw" ? 1.0
                    : cost                 ? cost->l2rw / cost->plain
                                           : 2.5);
                phases.push_back(std::move(ph));
            }
        }
    }

    // With --resume, the settings of OUT's earlier runs must be these (checked after the
    // checkpoints), and a training run whose results are all finished in OUT/results.csv is
    // taken from there (noisy_finished.hpp); its phases add nothing to the time left.
    const bool carry = c.resume && examples::check_sweep_file(c.out, sweep_definition(c, d));
    const Finished earlier = carry ? read_finished(c, plan) : Finished{};
    for (std::size_t t = 0, k = 0; t < trials; ++t)
        for (const auto& v : plan) {
            const bool done = earlier.taken(v, c.ratios[t / static_cast<std::size_t>(c.seeds)],
                                            c.first_seed + t % static_cast<std::size_t>(c.seeds));
            for (int i = 0; i < (v.ft ? 2 : 1); ++i, ++k)
                if (done) sweep.drop(phases[k].sweep_index);
        }

    // ---- what will run -----------------------------------------------------------------
    if (d.fashion)
        std::printf(
            "No --data given: using Fashion-MNIST (28x28x1, 10 classes) from %s in place of "
            "CIFAR.\n",
            d.dir.c_str());
    std::string ratios;
    for (double r : c.ratios) ratios += (ratios.empty() ? "" : ", ") + ratio_str(r);
    std::printf(
        "%s: %ld training images (%ld of them clean validation%s), %ld test; %s noise, ratio%s "
        "%s\n"
        "%s, SGD lr %g momentum %g weight decay %g (our choice: the paper gives none), batch "
        "%ld, %lld steps, lr x0.1 at",
        d.name.c_str(), static_cast<long>(d.train.n), static_cast<long>(d.clean_n),
        d.per_class
            ? examples::format(", %ld per class", static_cast<long>(d.clean_n / d.train.classes))
                  .c_str()
            : "",
        static_cast<long>(d.test.n), uniform_noise ? "UniformFlip" : "BackgroundFlip",
        by_ratio ? "s" : "", ratios.c_str(), c.model.c_str(), c.lr, c.momentum, c.weight_decay,
        static_cast<long>(c.batch), static_cast<long long>(c.steps));
    for (auto k : decays) std::printf(" %lld", static_cast<long long>(k));
    if (decays.empty()) std::printf(" (none)");
    std::printf("; augmentation (pad 4, crop, flip) %s\n", augment ? "on" : "off");
    bool any_ft = false;
    for (const auto& v : plan) any_ft = any_ft || v.ft;
    if (any_ft)
        std::printf(
            "+FT: %lld steps on the clean set alone, SGD lr %g momentum %g weight decay %g "
            "(fresh momentum)\n",
            static_cast<long long>(c.ft_steps), c.ft_lr, c.momentum, c.weight_decay);
    if (c.weight_dump_step >= 0) {
        std::printf("Weight dump: steps %lld..%lld of", static_cast<long long>(c.weight_dump_step),
                    static_cast<long long>(
                        std::min(c.steps, c.weight_dump_step + c.weight_dump_batches) - 1));
        for (const auto& v : plan)
            if (examples::per_example_weights(v.base)) std::printf(" %s", v.base.c_str());
        std::printf(" to %s, and Figure 3\n",
                    (fs::path(c.out) / "weights_<method>_<ratio>_seed<s>.csv").string().c_str());
    }
    if (!c.steps_given) {
        std::printf("No --steps given: this is the paper's full schedule, %lld steps per run. ",
                    static_cast<long long>(c.steps));
        if (cost) {
            double est = 0;
            for (const auto& v : plan)
                est +=
                    static_cast<double>(c.steps) * (v.base == "l2rw" ? cost->l2rw : cost->plain) +
                    (v.ft ? static_cast<double>(c.ft_steps) * cost->plain : 0.0);
            std::printf(
                "On this project's 2-core machine a %s step took %.2f s (%.2f s with "
                "l2rw), so these %zu result(s) would take about %s there. ",
                c.model.c_str(), cost->plain, cost->l2rw, results,
                examples::format_duration(est * c.seeds * static_cast<double>(c.ratios.size()))
                    .c_str());
        }
        std::printf(
            "The first progress line estimates the time on this machine; --steps N "
            "shortens the schedule (its decay points scale with it).\n");
    }
    std::printf(
        "Progress every %gs, with the time left for all runs (estimated from the steps "
        "so far)\n",
        c.progress_every);
    fs::create_directories(c.out);
    examples::write_sweep_file(c.out, sweep_definition(c, d));

    // ---- runs ----------------------------------------------------------------------------
    std::vector<RunResult> runs;
    std::vector<DumpedRun> dumps;
    std::size_t run_no = 0, phase_no = 0;
    std::vector<double> flipped(c.ratios.size(), 0.0);  // the share of flipped labels per ratio
    examples::Stopwatch all;
    for (std::size_t t = 0; t < trials; ++t) {  // per ratio, per seed, as planned
        const std::size_t q = t / static_cast<std::size_t>(c.seeds);
        const int r = static_cast<int>(t % static_cast<std::size_t>(c.seeds));
        const double ratio = c.ratios[q];
        const std::string at = label_tag(ratio);
        const std::uint64_t seed = c.first_seed + static_cast<std::uint64_t>(r);
        Rng rng(examples::derive_seed(seed, 0x2c));
        const auto split = d.per_class
                               ? data::split_clean_validation(
                                     d.train, data::PerClass{d.clean_n / d.train.classes}, rng)
                               : data::split_clean_validation(d.train, data::Total{d.clean_n}, rng);
        const index_t bg = background_of(r);
        const data::Dataset train = uniform_noise
                                        ? data::uniform_flip(split.train, ratio, rng)
                                        : data::background_flip(split.train, ratio, bg, rng);
        const data::Dataset& clean = split.val;
        flipped[q] = static_cast<double>(std::count(train.noisy.begin(), train.noisy.end(), true)) /
                     static_cast<double>(train.n);
        if (!uniform_noise)
            std::printf("%sseed %llu: background class %ld%s\n",
                        by_ratio ? ("ratio " + ratio_str(ratio) + " ").c_str() : "",
                        static_cast<unsigned long long>(seed), static_cast<long>(bg),
                        d.fashion
                            ? examples::format(" (%s)", examples::fashion_class_name(bg)).c_str()
                            : "");

        for (const auto& v : plan) {
            if (earlier.taken(v, ratio, seed)) {  // every result of this run is in OUT/results.csv
                phase_no += v.ft ? 2 : 1;
                for (const bool ft : {false, true}) {
                    if (ft ? !v.ft : !v.plain) continue;
                    const RunResult& x =
                        *earlier.find(run_key(v.base + (ft ? "+ft" : ""), ratio, seed));
                    std::printf(
                        "[%zu/%zu] %s%s seed %llu: finished in an earlier sitting (%s): test "
                        "accuracy %.2f%%\n",
                        ++run_no, results, x.method.c_str(), at.c_str(),
                        static_cast<unsigned long long>(seed),
                        (fs::path(c.out) / "results.csv").string().c_str(), 100 * x.accuracy);
                    runs.push_back(x);
                }
                if (c.weight_dump_step >= 0 && examples::per_example_weights(v.base)) {
                    examples::WeightDump dump(dump_file(v.base, ratio, seed), c.weight_dump_step,
                                              c.weight_dump_batches);
                    std::printf("%s seed %llu: %s\n", v.base.c_str(),
                                static_cast<unsigned long long>(seed),
                                dump.begin(c.steps, c.steps).c_str());
                    dumps.push_back({v.base, ratio, dump.rows()});
                }
                continue;
            }
            auto model = make_model(c, train, examples::derive_seed(seed, 0x4d));
            optim::SGD<T, B> opt(
                {.lr = c.lr, .momentum = c.momentum, .weight_decay = c.weight_decay});
            meta::PolicyConfig pc;
            pc.seed = examples::derive_seed(seed, 0x90);
            auto policy = meta::make_policy<Model>(v.base, pc);
            meta::TrainOptions o;
            o.batch_size = c.batch;
            o.validation_batch_size = 100;
            o.seed = examples::derive_seed(seed, 0x7e);
            o.lr_schedule = schedule;
            if (augment)
                o.augment = [](data::Dataset& b, Rng& g) {
                    data::augment_crop_flip(b, g, 4, true);
                };
            // The label counts the plain result when it is asked for, else the run it feeds.
            Phase& ph = phases[phase_no++];
            ph.label = examples::format("[%zu/%zu] %s%s seed %llu", run_no + 1, results,
                                        (v.plain ? v.base : v.base + " (for +ft)").c_str(),
                                        at.c_str(), static_cast<unsigned long long>(seed));
            std::optional<examples::WeightDump> dump;
            if (c.weight_dump_step >= 0 && examples::per_example_weights(v.base))
                dump.emplace(dump_file(v.base, ratio, seed), c.weight_dump_step,
                             c.weight_dump_batches);
            const auto p = run_phase(c, ph, *model, opt, *policy, train, clean, d.test, o, sweep,
                                     dump ? &*dump : nullptr);
            if (dump) dumps.push_back({v.base, ratio, dump->rows()});
            RunResult res;
            res.method = v.base;
            res.seed = seed;
            res.ratio = ratio;
            res.flipped_fraction = flipped[q];
            res.background = bg;
            res.seconds = p.seconds;
            res.flipped_share = p.flipped_share;
            res.first_step = p.summary.first_step;
            res.steps_done = p.summary.steps_done;
            res.steps_run = p.summary.steps_done - p.summary.first_step;
            res.skipped = p.skipped;
            const bool finished = res.steps_done == c.steps;
            // Evaluates the model as it is now into `x`, prints it, and writes every result so far.
            auto record = [&](RunResult x) {
                const auto ev = meta::evaluate(*model, d.test, 500);
                x.accuracy = ev.accuracy;
                x.loss = ev.loss;
                const auto n = x.steps_done + x.ft_steps_done;
                std::printf("%s%s seed %llu: test accuracy %.2f%%", x.method.c_str(), at.c_str(),
                            static_cast<unsigned long long>(x.seed), 100 * x.accuracy);
                if (x.flipped_share >= 0)
                    std::printf(", weight on flipped labels %.1f%%", 100 * x.flipped_share);
                std::printf("  (%lld steps in %.1f s, %.1f ms/step)%s\n", static_cast<long long>(n),
                            x.seconds, n ? 1e3 * x.seconds / static_cast<double>(n) : 0.0,
                            finished ? "" : " -- stopped early (--session-steps)");
                runs.push_back(x);
                write_results(c, runs, d, earlier.other);
            };
            if (v.plain) {
                ++run_no;
                record(res);
            }
            if (!v.ft) continue;
            ++run_no;
            Phase& fph = phases[phase_no++];
            if (!finished) {  // fine-tune only a finished run
                sweep.drop(fph.sweep_index);
                std::printf("%s+ft%s seed %llu: not fine-tuned: %s stopped at step %lld of %lld\n",
                            v.base.c_str(), at.c_str(), static_cast<unsigned long long>(seed),
                            v.base.c_str(), static_cast<long long>(res.steps_done),
                            static_cast<long long>(c.steps));
                continue;
            }
            optim::SGD<T, B> ft_opt(
                {.lr = c.ft_lr, .momentum = c.momentum, .weight_decay = c.weight_decay});
            meta::Uniform<Model> uniform;
            meta::TrainOptions fo;  // what meta::fine_tune does, plus checkpoints
            fo.batch_size = c.batch;
            fo.seed = examples::derive_seed(seed, 0xf7);
            fph.label =
                examples::format("[%zu/%zu] %s+ft%s seed %llu (fine-tuning)", run_no, results,
                                 v.base.c_str(), at.c_str(), static_cast<unsigned long long>(seed));
            const auto q = run_phase(c, fph, *model, ft_opt, uniform, clean, data::Dataset{},
                                     d.test, fo, sweep);
            RunResult f = res;
            f.method = v.base + "+ft";
            f.seconds += q.seconds;
            f.ft_steps_done = q.summary.steps_done;
            record(f);
        }
    }
    write_results(c, runs, d, earlier.other);  // also when every run was finished before
    print_summary(c, d, runs, flipped);
    if (c.weight_dump_step >= 0) draw_weight_figure(c, d, dumps);
    std::printf("Total time %s\n", examples::format_duration(all.seconds()).c_str());
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    examples::line_buffered_stdout();
    Config c;
    CLI::App app{
        "Noisy labels (Ren et al. 2018, sec. 4.2-4.3, Tables 1 and 2, Figures 3 and 5): "
        "CIFAR-10/100 with UniformFlip or BackgroundFlip label noise, a small clean validation "
        "set, each example-weighting method and the +FT (fine-tune on the clean set) variants. "
        "Without --data it runs on Fashion-MNIST (Debian's dataset-fashion-mnist) and says so. "
        "Every flag is checked before anything runs."};
    const auto note_given = add_flags(app, c);
    CLI11_PARSE(app, argc, argv);
    note_given();
    return examples::run_main("noisy_labels", [&] { return run(c); });
}
