// examples/distributed.cpp — the reweighted step data-parallel over MPI ranks:
//
//   mpirun -np 2 build/default/examples/distributed           (as root: --allow-run-as-root)
//
// Fashion-MNIST (Debian's dataset-fashion-mnist), `--train-size` training images whose labels
// are flipped to another class with probability `--noise`, a clean validation set of
// `--clean` images taken from the training set, LeNet, SGD with momentum. Each method trains
// with meta::train on every rank: the ranks draw the same batch, each takes its part of it
// (and of the validation batch), the weights and the step are those of the whole batch, and
// the parameters stay identical on every rank. Rank 0 alone prints. Run without mpirun, the
// same program is one process on the whole batch, and prints the same accuracies up to the
// rounding of the summed gradients.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <l2rw/dist/mpi.hpp>
#include <l2rw/l2rw.hpp>
#include <string>
#include <thread>
#include <vector>

#include "common.hpp"
#include "flags.hpp"

using namespace l2rw;
using T = float;
using B = Cpu;
using Model = nn::Sequential<T, B>;

namespace {

struct Config {
    std::string data_dir;
    std::int64_t steps = 2000, eval_every = 500;
    index_t train_size = 5000, clean = 100, batch = 100, test_size = 10000;
    double noise = 0.4, lr = 0.01;
    std::uint64_t seed = 1;
    std::vector<std::string> methods = {"uniform", "l2rw"};
};

struct Data {
    data::Dataset train, clean, test;
    index_t flipped = 0;
};

/// Fashion-MNIST cut and corrupted as the flags say (the same on every rank: seeded).
Data load(const Config& c) {
    std::string dir = c.data_dir;
    if (dir.empty()) {
        const auto found = examples::default_fashion_mnist_dir();
        if (!found)
            throw examples::FlagError(
                "no --data DIR given and no Fashion-MNIST found (Debian package "
                "dataset-fashion-mnist)");
        dir = found->string();
    }
    Data d;
    auto train = data::load_fashion_mnist(dir, true);
    d.test = data::load_fashion_mnist(dir, false);
    if (c.train_size > train.n)
        throw examples::FlagError("--train-size " + std::to_string(c.train_size) + ": there are " +
                                  std::to_string(train.n) + " training images");
    if (c.clean + c.batch > c.train_size)
        throw examples::FlagError("--clean " + std::to_string(c.clean) + " and --batch " +
                                  std::to_string(c.batch) + " need more than the " +
                                  std::to_string(c.train_size) + " images of --train-size");
    Rng rng(examples::derive_seed(c.seed, 0xd1));
    train = train.subset(data::choose(data::iota_indices(train.n), c.train_size, rng));
    auto split = data::split_clean_validation(train, data::Total{c.clean}, rng);
    d.clean = std::move(split.val);
    d.train = data::uniform_flip(split.train, c.noise, rng);
    for (index_t i = 0; i < d.train.n; ++i) d.flipped += d.train.is_noisy(i);
    if (c.test_size < d.test.n) d.test = d.test.subset(data::iota_indices(c.test_size));
    return d;
}

int run(const Config& c, const dist::Communicator& world) {
    const bool lead = world.rank() == 0;
    // Loading is a collective step: a rank that cannot read the data stops them all. Flag
    // errors are the same on every rank (the same flags, the same files): each throws it.
    Data d;
    std::string flag_error;
    dist::agree(world, 0, [&](std::span<double>) {
        try {
            d = load(c);
        } catch (const examples::FlagError& e) {
            flag_error = e.what();
        }
    });
    if (!flag_error.empty()) throw examples::FlagError(flag_error);
    if (lead)
        std::printf(
            "Fashion-MNIST: %ld training images (%ld labels flipped, %.0f%%), %ld clean, %ld test; "
            "LeNet, batch %ld over %d rank%s (%ld examples on rank 0, %d thread%s per rank), "
            "%lld steps\n",
            static_cast<long>(d.train.n), static_cast<long>(d.flipped), 100 * c.noise,
            static_cast<long>(d.clean.n), static_cast<long>(d.test.n), static_cast<long>(c.batch),
            world.size(), world.size() > 1 ? "s" : "",
            static_cast<long>(data::shard_of(c.batch, 0, world.size()).size()), num_threads(),
            num_threads() > 1 ? "s" : "", static_cast<long long>(c.steps));
    for (const auto& method : c.methods) {
        auto model = nn::lenet<T, B>({1, 28, 10}, examples::derive_seed(c.seed, 0x3e));
        optim::SGD<T, B> opt({.lr = c.lr, .momentum = 0.9});
        auto policy = meta::make_policy<Model>(method, {.seed = c.seed});
        dist::Counting counted(world);
        meta::TrainOptions o{.steps = c.steps,
                             .batch_size = c.batch,
                             .validation_batch_size = c.clean,
                             .seed = c.seed,
                             .eval_every = c.eval_every,
                             .comm = &counted};
        double noisy_mass = 0;
        std::int64_t weighed = 0;
        meta::Callbacks<T> cb;
        cb.on_step = [&](std::int64_t, const meta::StepReport<T>& r, double) {
            if (r.noisy_mass) noisy_mass += *r.noisy_mass, ++weighed;
        };
        cb.on_eval = [&](std::int64_t done) {
            const auto e = meta::evaluate(*model, d.test, 500, &world);
            if (lead)
                std::printf("%-8s step %5lld: test accuracy %.2f%%\n", method.c_str(),
                            static_cast<long long>(done), 100 * e.accuracy);
        };
        const auto t0 = std::chrono::steady_clock::now();
        meta::train(*model, opt, *policy, d.train, d.clean, o, cb);
        const double secs =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        const auto bytes = static_cast<double>(counted.bytes()) / static_cast<double>(c.steps);
        const auto e = meta::evaluate(*model, d.test, 500, &world);
        if (lead)
            std::printf(
                "%-8s test accuracy %.2f%%, weight on flipped labels %.1f%%; %.1f ms per step "
                "(evaluation included), %.0f bytes all-reduced per step and rank\n",
                method.c_str(), 100 * e.accuracy,
                weighed ? 100 * noisy_mass / static_cast<double>(weighed) : 0.0,
                1e3 * secs / static_cast<double>(c.steps), bytes);
    }
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    examples::line_buffered_stdout();
    dist::MpiSession session(&argc, &argv);
    dist::Mpi world;
    const bool lead = world.rank() == 0;
    CLI::App app{"Data-parallel learning to reweight over MPI ranks (run under mpirun)"};
    Config c;
    app.add_option("--data", c.data_dir, "Fashion-MNIST folder (default: Debian's)");
    app.add_option("--steps", c.steps, "training steps per method")
        ->check(examples::at_least(1))
        ->capture_default_str();
    app.add_option("--eval-every", c.eval_every, "test accuracy every this many steps (0: never)")
        ->check(examples::at_least(0))
        ->capture_default_str();
    app.add_option("--train-size", c.train_size, "training images (the clean set is cut from them)")
        ->check(examples::at_least(2))
        ->capture_default_str();
    app.add_option("--clean", c.clean, "clean validation images")
        ->check(examples::at_least(10))
        ->capture_default_str();
    app.add_option("--batch", c.batch, "training batch, split over the ranks")
        ->check(examples::at_least(1))
        ->capture_default_str();
    app.add_option("--test-size", c.test_size, "test images")
        ->check(examples::at_least(1))
        ->capture_default_str();
    app.add_option("--noise", c.noise, "share of training labels flipped to another class")
        ->check(examples::between(0, 0.9))
        ->capture_default_str();
    app.add_option("--lr", c.lr, "SGD learning rate (momentum 0.9)")
        ->check(examples::greater_than(0))
        ->capture_default_str();
    app.add_option("--seed", c.seed, "seed of the data, the model and the batches")
        ->capture_default_str();
    app.add_option("--methods", c.methods, "weighting methods (meta::make_policy names)")
        ->delimiter(',')
        ->capture_default_str();
    // Each rank's share of its node's cores, unless OMP_NUM_THREADS or --threads says more.
    int threads = std::getenv("OMP_NUM_THREADS")
                      ? num_threads()
                      : std::max(1, static_cast<int>(std::thread::hardware_concurrency()) /
                                        world.ranks_on_this_node());
    app.add_option("--threads", threads,
                   "threads per rank (default: OMP_NUM_THREADS, else the node's cores over its "
                   "ranks)")
        ->check(examples::at_least(1))
        ->capture_default_str();
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        return lead ? app.exit(e) : e.get_exit_code();  // every rank parsed the same flags
    }
    try {
        for (const auto& m : c.methods) examples::check_method(m);
        set_num_threads(threads);
        if (c.batch < world.size())
            throw examples::FlagError("--batch " + std::to_string(c.batch) +
                                      " is smaller than the " + std::to_string(world.size()) +
                                      " ranks");
        return run(c, world);
    } catch (const examples::FlagError& e) {
        if (lead)
            std::fprintf(stderr, "distributed: %s\nRun with --help for more information.\n",
                         e.what());
        return 2;
    } catch (const DistributedError& e) {
        // Thrown on every rank alike: they all stop here, and rank 0 says why.
        if (lead) std::fprintf(stderr, "distributed: %s\n", e.what());
        return 1;
    } catch (const std::exception& e) {
        // Seen by this rank alone, outside a collective step: end the whole job.
        std::fprintf(stderr, "distributed: rank %d: %s\n", world.rank(), e.what());
        std::fflush(stderr);
        dist::MpiSession::abort(1);
    }
}
