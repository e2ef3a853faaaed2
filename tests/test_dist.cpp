// tests/test_dist.cpp — the data-parallel pieces in one process: how a batch is cut into
// ranks' parts, and that with the single-process communicator every collective step is the
// identity (so that programs that never name a communicator run as before). The steps on
// 2 ranks are in tests/mpi/, run under mpiexec.
#include <l2rw/dist/collective.hpp>
#include <l2rw/meta.hpp>
#include <string>
#include <vector>

#include "testing.hpp"

using namespace l2rw;
using l2rw::testing::check_throws_mentioning;

TEST_CASE("data::shard_of: the ranks' parts cover a batch once, in order, sizes within one") {
    for (index_t n : {0, 1, 7, 100, 101}) {
        for (int P : {1, 2, 3, 8}) {
            index_t next = 0;
            for (int r = 0; r < P; ++r) {
                const auto s = data::shard_of(n, r, P);
                CHECK(s.begin == next);
                CHECK(s.size() >= n / P);
                CHECK(s.size() <= n / P + 1);
                next = s.end;
            }
            CHECK(next == n);
        }
    }
    CHECK(data::shard_of(101, 0, 2).size() == 51);
    CHECK(data::shard_of(101, 1, 2).begin == 51);
    check_throws_mentioning<ValueError>([] { (void)data::shard_of(10, 2, 2); }, {"rank 2 of 2"},
                                        "rank out of range");
    check_throws_mentioning<ValueError>([] { (void)data::shard_of(10, 0, 0); }, {"0 ranks"},
                                        "no ranks");
    const std::vector<index_t> rows = {5, 6, 7, 8, 9};
    CHECK(data::take(rows, data::shard_of(5, 1, 2)) == std::vector<index_t>{8, 9});
    check_throws_mentioning<ValueError>(
        [&] {
            (void)data::take(rows, data::Shard{3, 9});
        },
        {"[3, 9) of 5 rows"}, "take past the end");
}

TEST_CASE_TEMPLATE("data::slice: rows of a batch, on the backend and beside it", B, L2RW_BACKENDS) {
    data::Batch<double, B> b;
    b.x = Tensor<double, B>::randn(Shape{5, 2, 3}, 1);
    b.y = IndexTensor<B>::from_host(Shape{5}, std::vector<index_t>{0, 1, 2, 0, 1});
    b.noisy = {true, false, true, false, false};
    b.indices = {10, 11, 12, 13, 14};
    const auto s = data::slice(b, 1, 4);
    CHECK(s.x.shape() == Shape{3, 2, 3});
    const auto x = b.x.to_host(), xs = s.x.to_host();
    CHECK(std::vector<double>(x.begin() + 6, x.begin() + 24) == xs);
    CHECK(s.y.to_host() == std::vector<index_t>{1, 2, 0});
    CHECK(s.noisy == std::vector<bool>{false, true, false});
    CHECK(s.indices == std::vector<index_t>{11, 12, 13});
    CHECK(s.clean_labels.empty());
    CHECK(data::slice(b, 2, 2).size() == 0);
    check_throws_mentioning<ValueError>([&] { (void)data::slice(b, 3, 6); },
                                        {"rows [3, 6) of a batch of 5"}, "slice past the end");
}

TEST_CASE("dist: one process — agree runs its part and passes its exceptions on unchanged") {
    const auto& one = dist::single_process();
    CHECK(one.size() == 1);
    CHECK(&dist::or_single(nullptr) == &one);
    const auto s = dist::agree(one, 2, [](std::span<double> out) {
        REQUIRE(out.size() == 2);
        CHECK(out[0] == 0.0);
        out[0] = 1.5;
        out[1] = -2;
    });
    CHECK(s == std::vector<double>{1.5, -2});
    // The exception itself, not a DistributedError: single-process users see what they saw.
    check_throws_mentioning<ShapeError>(
        [&] { dist::agree(one, 1, [](std::span<double>) { throw ShapeError("bad shape"); }); },
        {"bad shape"}, "agree on one rank");
    dist::Counting counted(one);
    double v[3] = {1, 2, 3};
    counted.all_reduce_host_sum(v, 3);
    float f[2] = {1, 2};
    counted.all_reduce_sum(f, 2);
    CHECK(v[2] == 3.0);
    CHECK(counted.bytes() == 3 * sizeof(double) + 2 * sizeof(float));
    CHECK(counted.calls() == 2);
}

TEST_CASE_TEMPLATE("dist: one process — all_reduce is the identity, tensors and Vars", B,
                   L2RW_BACKENDS) {
    const auto& one = dist::single_process();
    const std::vector<Tensor<double, B>> ts = {Tensor<double, B>::randn(Shape{3}, 2),
                                               Tensor<double, B>::randn(Shape{2, 2}, 3)};
    const auto same = dist::all_reduce_sum(one, ts);
    CHECK(same[0].data() == ts[0].data());  // no copy at all
    const auto half = dist::all_reduce_sum(one, ts, 0.5);
    CHECK(half[1].shape() == Shape{2, 2});
    CHECK(half[1].to_host()[3] == 0.5 * ts[1].to_host()[3]);
    CHECK(ts[1].to_host()[3] == same[1].to_host()[3]);  // the input is left alone
    Tape<double, B> tape;
    auto x = tape.leaf(Tensor<double, B>::randn(Shape{4}, 4));
    auto y = dist::all_reduce(x, one);
    CHECK(y.node_id() == x.node_id());
}

TEST_CASE("dist: a reweighter given the single-process communicator steps as one given none") {
    using Model = nn::Sequential<double, Cpu>;
    auto a = nn::mlp<double, Cpu>({6, 8, 3}, 1), b = nn::mlp<double, Cpu>({6, 8, 3}, 1);
    optim::SGD<double, Cpu> oa({.lr = 0.1, .momentum = 0.9}), ob({.lr = 0.1, .momentum = 0.9});
    meta::OnlineReweighter<Model> ra(*a);
    meta::OnlineReweighter<Model> rb(*b, {}, meta::default_loss<double, Cpu>,
                                     &dist::single_process());
    for (int s = 0; s < 3; ++s) {
        meta::Batch<double, Cpu> tr{Tensor<double, Cpu>::randn(Shape{20, 6}, 10 + s),
                                    testing::random_labels<Cpu>(20, 3, 20 + s)};
        meta::Batch<double, Cpu> va{Tensor<double, Cpu>::randn(Shape{5, 6}, 30 + s),
                                    testing::random_labels<Cpu>(5, 3, 40 + s)};
        CHECK(ra.step(tr, va, oa).weights == rb.step(tr, va, ob).weights);
    }
    for (std::size_t k = 0; k < nn::named_parameters(*a).size(); ++k)
        CHECK(nn::named_parameters(*a)[k].second->to_host() ==
              nn::named_parameters(*b)[k].second->to_host());
}
