// l2rw/autodiff/grad.hpp — reverse-mode differentiation by walking the tape backwards.
#pragma once

#include <algorithm>
#include <cmath>
#include <span>
#include <string>
#include <vector>

#include "../eager.hpp"
#include "ops.hpp"
#include "var.hpp"

namespace l2rw {

namespace detail {
/// Throws TapeError when a value that node `id` keeps for its rule was written since it was
/// recorded (Tensor::version), instead of running the rule on the new numbers.
template <class T, Backend B>
void check_versions(const Node<T, B>& nd, index_t id) {
    auto fail = [&](const std::string& what, std::uint64_t then, std::uint64_t now) {
        throw TapeError("grad: " + what + " of op '" + nd.op + "' (node " + std::to_string(id) +
                        ") was modified in place after it was recorded (version " +
                        std::to_string(then) + ", now " + std::to_string(now) +
                        "): an optimizer step, Tensor::assign, a checkpoint load or a write "
                        "through data() while the tape was still to be differentiated");
    };
    if (nd.value.numel() > 0 && nd.value.version() != nd.out_version)
        fail("the output", nd.out_version, nd.value.version());
    for (int k = 0; k < nd.nin; ++k) {
        const auto uk = static_cast<std::size_t>(k);
        const auto& v = nd.in_val[uk];
        if (v.numel() > 0 && v.version() != nd.in_version[uk])
            fail("input " + std::to_string(k), nd.in_version[uk], v.version());
    }
}
}  // namespace detail

struct GradOptions {
    /// Record the backward pass on the tape so that its results can be differentiated again.
    bool create_graph = false;
    /// Give zeros for inputs the outputs do not depend on, instead of throwing TapeError.
    bool allow_unused = false;
    /// Throw NumericError when a scalar output is NaN or infinite.
    bool check_finite = true;
};

/// Gradients of sum_k ⟨grad_outputs[k], outputs[k]⟩ with respect to each of `inputs`.
///
/// Outputs that are one element may omit their seed (it is 1). With create_graph the
/// returned Vars are nodes on the same tape and can be differentiated again, to any order.
/// The walk is a loop over node ids (every node's inputs have smaller ids), never recursive.
template <class T, Backend B>
std::vector<Var<T, B>> grad(std::span<const Var<T, B>> outputs, std::span<const Var<T, B>> inputs,
                            std::span<const Var<T, B>> grad_outputs = {}, GradOptions opt = {}) {
    if (outputs.empty()) throw TapeError("grad: no outputs given");
    if (!grad_outputs.empty() && grad_outputs.size() != outputs.size())
        throw TapeError("grad: " + std::to_string(grad_outputs.size()) + " seeds for " +
                        std::to_string(outputs.size()) + " outputs");
    std::shared_ptr<detail::TapeData<T, B>> tape;
    auto bind = [&](const Var<T, B>& v, const char* what, std::size_t k) {
        if (!v.defined())
            throw TapeError(std::string("grad: ") + what + " " + std::to_string(k) +
                            " is undefined");
        if (!v.tape_data() || v.node_id() < 0)
            throw TapeError(std::string("grad: ") + what + " " + std::to_string(k) +
                            " does not require grad (it is not on a tape)");
        if (v.tape_data()->released)
            throw TapeError(std::string("grad: ") + what + " " + std::to_string(k) +
                            " belongs to a tape that was released");
        if (tape && tape != v.tape_data())
            throw TapeError("grad: outputs and inputs belong to different tapes");
        tape = v.tape_data();
        tape->check_thread("grad");
    };
    for (std::size_t k = 0; k < outputs.size(); ++k) bind(outputs[k], "output", k);
    for (std::size_t k = 0; k < inputs.size(); ++k) bind(inputs[k], "input", k);
    auto& nodes = tape->nodes;
    const auto n_nodes = static_cast<index_t>(nodes.size());

    // Forward sweep: which nodes depend on some input.
    index_t lo = n_nodes, hi = -1;
    std::vector<char> reach(static_cast<std::size_t>(n_nodes), 0);
    for (const auto& v : inputs) {
        reach[static_cast<std::size_t>(v.node_id())] = 1;
        lo = std::min(lo, v.node_id());
    }
    for (const auto& v : outputs) hi = std::max(hi, v.node_id());
    for (index_t id = lo + 1; id <= hi; ++id) {
        auto& nd = nodes[static_cast<std::size_t>(id)];
        for (int k = 0; k < nd.nin && !reach[static_cast<std::size_t>(id)]; ++k) {
            const index_t j = nd.in_id[static_cast<std::size_t>(k)];
            if (j >= 0 && reach[static_cast<std::size_t>(j)])
                reach[static_cast<std::size_t>(id)] = 1;
        }
    }

    // Seeds.
    std::vector<Var<T, B>> G(static_cast<std::size_t>(n_nodes));
    for (std::size_t k = 0; k < outputs.size(); ++k) {
        const auto& o = outputs[k];
        Var<T, B> seed;
        if (!grad_outputs.empty() && grad_outputs[k].defined()) {
            seed = grad_outputs[k];
            if (!(seed.shape() == o.shape()))
                throw ShapeError("grad: seed " + std::to_string(k) + " has shape " +
                                 seed.shape().str() + " but its output has shape " +
                                 o.shape().str());
        } else {
            if (o.numel() != 1)
                throw ShapeError("grad: output " + std::to_string(k) + " of shape " +
                                 o.shape().str() +
                                 " is not a scalar, so it needs a seed (grad_outputs)");
            seed = Var<T, B>(Tensor<T, B>::ones(o.shape()));
        }
        if (opt.check_finite && o.numel() == 1 && !std::isfinite(static_cast<double>(o.item())))
            throw NumericError("grad: output " + std::to_string(k) + " is not finite (" +
                               std::to_string(static_cast<double>(o.item())) + ")");
        auto& slot = G[static_cast<std::size_t>(o.node_id())];
        slot = slot.defined() ? detail::accumulate(slot, seed) : seed;
    }

    std::vector<char> is_input(static_cast<std::size_t>(n_nodes), 0);
    for (const auto& v : inputs) is_input[static_cast<std::size_t>(v.node_id())] = 1;

    {
        // Without create_graph the rules run unrecorded on constants.
        struct ModeGuard {
            bool prev;
            explicit ModeGuard(bool on) : prev(detail::grad_mode()) { detail::grad_mode() = on; }
            ~ModeGuard() { detail::grad_mode() = prev; }
        } guard(opt.create_graph);

        for (index_t id = hi; id >= lo && id >= 0; --id) {
            const auto uid = static_cast<std::size_t>(id);
            if (!reach[uid] || !G[uid].defined()) continue;
            // deque: this reference survives the appends the rule makes.
            const auto& nd = nodes[uid];
            if (!nd.vjp) continue;  // a leaf
            detail::check_versions(nd, id);
            detail::VjpContext<T, B> ctx;
            bool any = false;
            for (int k = 0; k < nd.nin; ++k) {
                const auto uk = static_cast<std::size_t>(k);
                const index_t j = nd.in_id[uk];
                ctx.needs[uk] = j >= 0 && reach[static_cast<std::size_t>(j)];
                any = any || ctx.needs[uk];
                ctx.in[uk] = (opt.create_graph && j >= 0) ? Var<T, B>(nd.in_val[uk], tape, j)
                                                          : Var<T, B>(nd.in_val[uk]);
            }
            if (!any) continue;
            ctx.out = opt.create_graph ? Var<T, B>(nd.value, tape, id) : Var<T, B>(nd.value);
            ctx.gout = opt.create_graph ? G[uid] : G[uid].detach();
            nd.vjp(ctx);
            for (int k = 0; k < nd.nin; ++k) {
                const auto uk = static_cast<std::size_t>(k);
                if (!ctx.needs[uk]) continue;
                const auto& gk = ctx.gin[uk];
                if (!gk.defined())
                    throw TapeError(std::string("grad: the rule of op '") + nd.op +
                                    "' gave no gradient for its input " + std::to_string(k));
                if (!(gk.shape() == nd.in_shape[uk]))
                    throw ShapeError(std::string("grad: the rule of op '") + nd.op +
                                     "' gave shape " + gk.shape().str() + " for input " +
                                     std::to_string(k) + " of shape " + nd.in_shape[uk].str());
                auto& slot = G[static_cast<std::size_t>(nd.in_id[uk])];
                slot = slot.defined() ? detail::accumulate(slot, gk) : gk;
            }
            if (!is_input[uid]) G[uid] = Var<T, B>();  // free what is no longer needed
        }
    }

    std::vector<Var<T, B>> result;
    result.reserve(inputs.size());
    for (std::size_t k = 0; k < inputs.size(); ++k) {
        const auto& g = G[static_cast<std::size_t>(inputs[k].node_id())];
        if (g.defined()) {
            result.push_back(opt.create_graph ? g : g.detach());
        } else if (opt.allow_unused) {
            result.push_back(Var<T, B>(Tensor<T, B>::zeros(inputs[k].shape())));
        } else {
            throw TapeError("grad: input " + std::to_string(k) +
                            " is not used by the outputs (set allow_unused to get zeros)");
        }
    }
    return result;
}

template <class T, Backend B>
std::vector<Var<T, B>> grad(const Var<T, B>& output, const std::vector<Var<T, B>>& inputs,
                            GradOptions opt = {}) {
    return grad<T, B>(std::span<const Var<T, B>>(&output, 1), std::span<const Var<T, B>>(inputs),
                      {}, opt);
}

template <class T, Backend B>
Var<T, B> grad(const Var<T, B>& output, const Var<T, B>& input, GradOptions opt = {}) {
    return grad<T, B>(std::span<const Var<T, B>>(&output, 1), std::span<const Var<T, B>>(&input, 1),
                      {}, opt)[0];
}

/// Vector-Jacobian product: the gradient of ⟨seed, output⟩ with respect to `inputs`.
template <class T, Backend B>
std::vector<Var<T, B>> vjp(const Var<T, B>& output, const std::vector<Var<T, B>>& inputs,
                           const Var<T, B>& seed, GradOptions opt = {}) {
    return grad<T, B>(std::span<const Var<T, B>>(&output, 1), std::span<const Var<T, B>>(inputs),
                      std::span<const Var<T, B>>(&seed, 1), opt);
}

}  // namespace l2rw
