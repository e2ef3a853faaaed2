// l2rw/meta/meta_gradient.hpp — how OnlineReweighter (reweighter.hpp) computes the
// meta-gradient u = −∂L_v(θ'(ε))/∂ε of a batch, by each strategy, in one process or
// data-parallel over a dist::Communicator's ranks (the file comment of reweighter.hpp has
// the algorithm; DESIGN.md the math). Not a user-facing interface.
#pragma once

#include <cmath>
#include <span>
#include <string>
#include <vector>

#include "../autodiff/grad.hpp"
#include "../autodiff/jvp.hpp"
#include "../dist/collective.hpp"
#include "../nn/module.hpp"
#include "batch.hpp"
#include "lookahead.hpp"
#include "weighting.hpp"

namespace l2rw::meta::detail {

template <class Model>
class MetaGradient {
  public:
    using T = typename Model::value_type;
    using B = typename Model::backend;

    /// `validation_weight_decay` and `meta_mode` as in ReweightOptions; all four references
    /// must outlive the object.
    MetaGradient(Model& model, const LossFn<T, B>& loss, const dist::Communicator& comm,
                 bool validation_weight_decay, nn::Mode meta_mode)
        : model_(model),
          loss_(loss),
          comm_(&comm),
          validation_weight_decay_(validation_weight_decay),
          meta_mode_(meta_mode) {}

    /// Where this rank's batches sit in the whole ones (one process: they are the whole).
    struct Layout {
        index_t n = 0, m = 0;  // examples in the whole training and validation batches
        index_t offset = 0;    // this rank's first training example in the whole batch
        index_t local = 0;     // this rank's training examples
    };

    /// Checks this rank's batches and learns every rank's batch sizes (one all-reduce).
    Layout layout(const Batch<T, B>& train, const Batch<T, B>& val) const {
        const int P = comm_->size(), me = comm_->rank();
        const auto s =
            dist::agree(*comm_, 2 * static_cast<std::size_t>(P), [&](std::span<double> out) {
                detail::check_batch(train, who, "training");
                detail::check_batch(val, who, "validation");
                out[static_cast<std::size_t>(me)] = static_cast<double>(train.size());
                out[static_cast<std::size_t>(P + me)] = static_cast<double>(val.size());
            });
        Layout l;
        for (int k = 0; k < P; ++k) {
            const auto nk = static_cast<index_t>(s[static_cast<std::size_t>(k)]);
            l.n += nk;
            l.m += static_cast<index_t>(s[static_cast<std::size_t>(P + k)]);
            if (k < me) l.offset += nk;
        }
        l.local = train.size();
        return l;
    }

    Var<T, B> per_example(const Batch<T, B>& b, const nn::Context<T, B>& ctx, const char* what) {
        return detail::per_example(model_, b, loss_, ctx,
                                   std::string(who) + ": the " + what + " batch");
    }

    /// This rank's part of L_v: the mean loss of its validation examples, and (λ/2)‖θ'‖² with
    /// validation_weight_decay; data-parallel, (1/m)·Σ over its examples and the term's
    /// share 1/P, so that the parts sum to the L_v of the whole batch.
    Var<T, B> validation_loss(const Batch<T, B>& val, const nn::ParamBinding<T, B>& bind,
                              const Lookahead<T, B>& la, const Layout& l) {
        nn::Context<T, B> ctx{meta_mode_, &bind, nullptr};
        const int P = comm_->size();
        auto Lv = mean(per_example(val, ctx, "validation"));
        if (P > 1) Lv = Lv * (static_cast<T>(val.size()) / static_cast<T>(l.m));
        if (validation_weight_decay_ && la.weight_decay != T(0)) {
            Var<T, B> reg;
            for (const auto& p : bind.vars()) {
                auto s = sum(p * p);
                reg = reg.defined() ? reg + s : s;
            }
            Lv = Lv + reg * (la.weight_decay / T(2) / static_cast<T>(P));
        }
        const double lv = static_cast<double>(Lv.item());
        if (!std::isfinite(lv))
            throw NumericError("OnlineReweighter: the validation loss is not finite (" +
                               std::to_string(lv) + ")");
        return Lv;
    }

    /// The training forward of a meta pass: parameters and ε as leaves, per-example losses.
    /// With `tangents` the parameters carry them (forward mode), and f carries J_f·tangents.
    struct TrainPass {
        nn::ParamBinding<T, B> bind;
        Var<T, B> eps;
        Var<T, B> f;
    };
    TrainPass train_pass(Tape<T, B>& tape, const Batch<T, B>& train, nn::Mode mode, Rng* rng,
                         const std::vector<Var<T, B>>* tangents = nullptr) {
        TrainPass p;
        p.bind = nn::ParamBinding<T, B>::leaves(model_, tape);
        if (tangents) {
            std::vector<Var<T, B>> duals;
            for (std::size_t k = 0; k < p.bind.size(); ++k)
                duals.push_back(make_dual(p.bind[k], (*tangents)[k]));
            p.bind = p.bind.substitute(std::move(duals));
        } else {
            p.eps = tape.leaf(Tensor<T, B>::zeros(Shape{train.y.numel()}));
        }
        nn::Context<T, B> ctx{mode, &p.bind, rng};
        p.f = per_example(train, ctx, "training");
        return p;
    }

    /// The training pass (on `tape`, for the step's backward) and u of the whole batch by
    /// strategy r.strategy, with the whole batch's noise flags.
    struct MetaPass {
        TrainPass pass;
        std::vector<T> u;
        std::vector<bool> noisy;
    };
    MetaPass meta_u(Tape<T, B>& tape, const Batch<T, B>& train, const Batch<T, B>& val,
                    const Lookahead<T, B>& la, nn::Mode mode, Rng* rng, StepReport<T>& r,
                    const Layout& l) {
        MetaPass m;
        const T c = la.lr * la.scale;
        if (r.strategy == Strategy::general) {
            general_u(m, tape, train, val, la, mode, rng, r, l);
            return m;
        }
        const auto gv = validation_gradient(val, la, r, l);
        gather(m, train, l, [&] {
            std::vector<T> u(static_cast<std::size_t>(l.local), T(0));
            if (r.strategy == Strategy::exact) {
                m.pass = train_pass(tape, train, mode, rng, &gv);
                if (!m.pass.f.has_tangent()) return u;  // f does not depend on the parameters
                const auto jf = m.pass.f.tangent().to_host();
                for (std::size_t i = 0; i < u.size(); ++i) u[i] = c * jf[i];
                return u;
            }
            m.pass = train_pass(tape, train, mode, rng);
            // u = αs · J_f(θ) ∇L_v: the double-backward VJP of the training gradient.
            auto gt = grad(sum(m.pass.f * m.pass.eps), m.pass.bind.vars(),
                           GradOptions{.create_graph = true, .allow_unused = true});
            Var<T, B> dot;
            for (std::size_t k = 0; k < gt.size(); ++k) {
                if (!gt[k].requires_grad()) continue;  // a parameter the loss does not reach
                auto s = sum(gt[k] * gv[k]);
                dot = dot.defined() ? dot + s : s;
            }
            if (!dot.defined()) return u;
            auto du = grad(dot, m.pass.eps, GradOptions{.allow_unused = true}).to_host();
            for (std::size_t i = 0; i < u.size(); ++i) u[i] = c * du[i];
            return u;
        });
        return m;
    }

    /// m.u and m.noisy of the whole batch: `local()` gives this rank's u (which, with P > 1
    /// ranks, is checked to be finite here, so that the error names the rank), and the ranks'
    /// parts are put end to end, their noise flags too (one all-reduce of 2n + 1 values).
    template <class F>
    void gather(MetaPass& m, const Batch<T, B>& train, const Layout& l, F&& local) {
        const int P = comm_->size();
        if (P == 1) {
            m.u = local();
            m.noisy = train.noisy;
            return;
        }
        const auto n = static_cast<std::size_t>(l.n), at = static_cast<std::size_t>(l.offset);
        const auto s = dist::agree(*comm_, 2 * n + 1, [&](std::span<double> out) {
            const auto u = local();
            try {
                check_finite_raw(u,
                                 std::string(who) + " (rank " + std::to_string(comm_->rank()) + ")",
                                 l.offset);
            } catch (const NumericError& e) {
                throw NumericError(e.what() + nonfinite_input(train, "training"));
            }
            for (std::size_t i = 0; i < u.size(); ++i) out[at + i] = static_cast<double>(u[i]);
            for (std::size_t i = 0; i < train.noisy.size(); ++i)
                out[n + at + i] = train.noisy[i] ? 1.0 : 0.0;
            out[2 * n] = train.noisy.empty() ? 0.0 : 1.0;
        });
        m.u.resize(n);
        for (std::size_t i = 0; i < n; ++i) m.u[i] = static_cast<T>(s[i]);
        m.noisy.clear();
        if (s[2 * n] == static_cast<double>(P))  // flags only when every rank has them
            for (std::size_t i = 0; i < n; ++i) m.noisy.push_back(s[n + i] != 0.0);
    }

    /// General: u = −∂L_v(θ'(ε))/∂ε through the recorded lookahead; data-parallel, its
    /// gradient goes through dist::all_reduce, so θ' is global and so is ∂L_v/∂ε.
    void general_u(MetaPass& m, Tape<T, B>& tape, const Batch<T, B>& train, const Batch<T, B>& val,
                   const Lookahead<T, B>& la, nn::Mode mode, Rng* rng, StepReport<T>& r,
                   const Layout& l) {
        std::vector<Var<T, B>> g;
        dist::agree(*comm_, 0, [&](std::span<double>) {
            m.pass = train_pass(tape, train, mode, rng);
            g = grad(sum(m.pass.f * m.pass.eps), m.pass.bind.vars(),
                     GradOptions{.create_graph = true, .allow_unused = true});
        });
        for (auto& gk : g) gk = dist::all_reduce(gk, *comm_);
        Var<T, B> Lv;
        const auto lv = dist::agree(*comm_, 1, [&](std::span<double> out) {
            Lv = validation_loss(val, m.pass.bind.substitute(la.apply(m.pass.bind.vars(), g)), la,
                                 l);
            out[0] = static_cast<double>(Lv.item());
        });
        r.validation_loss = lv[0];
        gather(m, train, l, [&] {
            auto u = grad(Lv, m.pass.eps, GradOptions{.allow_unused = true}).to_host();
            for (auto& v : u) v = -v;
            return u;
        });
    }

    /// ∇L_v at θ'₀ = θ'(g = 0) by one first-order backward on a tape of its own (summed over
    /// ranks: one all-reduce of the parameters' size).
    std::vector<Var<T, B>> validation_gradient(const Batch<T, B>& val, const Lookahead<T, B>& la,
                                               StepReport<T>& r, const Layout& l) {
        std::vector<Var<T, B>> gv;
        const auto lv = dist::agree(*comm_, 1, [&](std::span<double> out) {
            Tape<T, B> tape;
            const auto bind = nn::ParamBinding<T, B>::constants(model_);
            std::vector<Var<T, B>> zeros, theta0;
            for (const auto& v : bind.vars())
                zeros.push_back(Var<T, B>(Tensor<T, B>::zeros(v.shape())));
            {
                NoGradGuard ng;
                for (auto& v : la.apply(bind.vars(), zeros)) theta0.push_back(tape.leaf(v.value()));
            }
            auto Lv = validation_loss(val, bind.substitute(theta0), la, l);
            out[0] = static_cast<double>(Lv.item());
            gv = grad(Lv, theta0, GradOptions{.allow_unused = true});
            std::vector<Tensor<T, B>> own;
            for (const auto& v : gv) own.push_back(v.value());
            check_own_gradient(model_, own, val, *comm_, "the validation loss", "validation");
        });
        r.validation_loss = lv[0];
        if (comm_->size() == 1) return gv;
        std::vector<Tensor<T, B>> values;
        for (const auto& v : gv) values.push_back(v.value());
        std::vector<Var<T, B>> out;
        for (auto& t : dist::all_reduce_sum(*comm_, values)) out.push_back(Var<T, B>(std::move(t)));
        return out;
    }

  private:
    static constexpr const char* who = "OnlineReweighter";

    Model& model_;
    const LossFn<T, B>& loss_;
    const dist::Communicator* comm_;
    bool validation_weight_decay_;
    nn::Mode meta_mode_;
};

}  // namespace l2rw::meta::detail
