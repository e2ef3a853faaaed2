// l2rw/meta/evaluate.hpp — accuracy and mean loss of a model on a dataset (eval mode, not
// recorded), in one process or split over the ranks of a dist::Communicator.
#pragma once

#include <algorithm>
#include <string>
#include <vector>

#include "../data/dataset.hpp"
#include "../data/sampler.hpp"
#include "../dist/communicator.hpp"
#include "weighting.hpp"

namespace l2rw::meta {

struct EvalResult {
    double accuracy = 0;  ///< fraction of examples whose predicted class is their (observed) label
    double loss = 0;      ///< mean per-example default_loss
    index_t count = 0;
};

/// Accuracy and mean loss of `model` on `ds` in eval mode (running statistics, no dropout),
/// without recording, `batch_size` examples at a time. A one-output head predicts class 1
/// when its logit is > 0; a softmax head its largest output (ties: the lowest class). With a
/// communicator of P > 1 ranks (holding the same model), each rank evaluates its part of
/// `ds` (data::shard_of) and every rank gets the result for the whole of it.
template <class Model>
EvalResult evaluate(Model& model, const data::Dataset& ds, index_t batch_size = 100,
                    const dist::Communicator* comm = nullptr) {
    using T = typename Model::value_type;
    using B = typename Model::backend;
    if (ds.n <= 0) throw ValueError("evaluate: the dataset is empty");
    if (batch_size <= 0)
        throw ValueError("evaluate: batch size " + std::to_string(batch_size) + " is not positive");
    const auto& c = dist::or_single(comm);
    const auto part = data::shard_of(ds.n, c.rank(), c.size());
    NoGradGuard ng;
    nn::Context<T, B> ctx{nn::Mode::eval, nullptr, nullptr};
    double loss = 0;
    index_t correct = 0;
    for (index_t lo = part.begin; lo < part.end; lo += batch_size) {
        std::vector<index_t> rows;
        for (index_t i = lo; i < std::min(part.end, lo + batch_size); ++i) rows.push_back(i);
        const auto b = data::to_batch<T, B>(ds, rows);
        const auto out = model.forward(Var<T, B>(b.x), ctx);
        for (T v : default_loss<T, B>(out, b.y).to_host()) loss += static_cast<double>(v);
        const auto z = out.to_host();
        const auto k = static_cast<std::size_t>(rows.size());
        const std::size_t c = z.size() / k;
        for (std::size_t i = 0; i < k; ++i) {
            index_t pred = 0;
            if (c == 1) {
                pred = z[i] > T(0) ? 1 : 0;
            } else {
                for (std::size_t j = 1; j < c; ++j)
                    if (z[i * c + j] > z[i * c + static_cast<std::size_t>(pred)])
                        pred = static_cast<index_t>(j);
            }
            correct += pred == ds.labels[static_cast<std::size_t>(rows[i])];
        }
    }
    if (c.size() > 1) {
        double sums[2] = {loss, static_cast<double>(correct)};
        c.all_reduce_host_sum(sums, 2);
        loss = sums[0];
        correct = static_cast<index_t>(sums[1]);
    }
    return {static_cast<double>(correct) / static_cast<double>(ds.n),
            loss / static_cast<double>(ds.n), ds.n};
}

}  // namespace l2rw::meta
