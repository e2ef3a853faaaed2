// l2rw/nn/module.hpp — the layer interface, the forward context, and parameter binding.
//
// A Module owns its parameters and buffers as Tensors and shows them through visit() with
// stable dotted names. forward() never reads a parameter Tensor directly: it asks the
// Context, whose ParamBinding maps each parameter to the Var to use — a leaf on the tape
// for an ordinary step, or θ' = θ − αg for a lookahead — so a model is evaluated at
// substituted parameters without being copied or rebuilt.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <tuple>
#include <unordered_map>
#include <utility>
#include <vector>

#include "../autodiff/var.hpp"
#include "../random.hpp"

namespace l2rw::nn {

/// How layers with state behave: train (batch statistics, running statistics updated,
/// dropout on), eval (running statistics, dropout off), meta (batch statistics, running
/// statistics untouched, dropout off — for the reweighting passes).
enum class Mode { train, eval, meta };

inline const char* to_string(Mode m) {
    switch (m) {
        case Mode::train:
            return "train";
        case Mode::eval:
            return "eval";
        case Mode::meta:
            return "meta";
    }
    return "?";
}

/// What a tensor held by a module is.
enum class Kind { parameter, buffer };

template <class T, Backend B>
using Visitor = std::function<void(const std::string& name, Tensor<T, B>& tensor, Kind kind)>;

template <class T, Backend B>
class ParamBinding;

template <class T, Backend B>
struct Context {
    Mode mode = Mode::train;
    const ParamBinding<T, B>* params = nullptr;  // null: parameters enter as constants
    Rng* rng = nullptr;                          // dropout masks in train mode

    /// The Var standing for parameter tensor `p` in this pass.
    Var<T, B> param(const Tensor<T, B>& p) const;
};

template <class T, Backend B>
class Module {
  public:
    using value_type = T;
    using backend = B;

    virtual ~Module() = default;
    virtual Var<T, B> forward(const Var<T, B>& x, const Context<T, B>& ctx) = 0;
    /// Calls `v` for every parameter and buffer, names prefixed by `prefix`.
    virtual void visit(const std::string& prefix, const Visitor<T, B>& v) { (void)prefix, (void)v; }
    [[nodiscard]] virtual std::string type_name() const = 0;

    Var<T, B> operator()(const Var<T, B>& x, const Context<T, B>& ctx) { return forward(x, ctx); }
};

/// "prefix.name", or "name" when prefix is empty.
inline std::string join_name(const std::string& prefix, const std::string& name) {
    return prefix.empty() ? name : prefix + "." + name;
}

/// Every parameter (not buffers) of `m` with its name, in visiting order.
template <class T, Backend B>
std::vector<std::pair<std::string, Tensor<T, B>*>> named_parameters(Module<T, B>& m) {
    std::vector<std::pair<std::string, Tensor<T, B>*>> out;
    m.visit("", [&](const std::string& n, Tensor<T, B>& t, Kind k) {
        if (k == Kind::parameter) out.emplace_back(n, &t);
    });
    return out;
}
/// Every parameter and buffer of `m` with its name and kind, in visiting order.
template <class T, Backend B>
std::vector<std::tuple<std::string, Tensor<T, B>*, Kind>> named_tensors(Module<T, B>& m) {
    std::vector<std::tuple<std::string, Tensor<T, B>*, Kind>> out;
    m.visit("", [&](const std::string& n, Tensor<T, B>& t, Kind k) { out.emplace_back(n, &t, k); });
    return out;
}
/// The number of scalar parameters.
template <class T, Backend B>
index_t parameter_count(Module<T, B>& m) {
    index_t n = 0;
    for (auto& [name, t] : named_parameters(m)) n += t->numel();
    return n;
}

/// The Vars that stand for a module's parameters in one pass, in named_parameters order.
template <class T, Backend B>
class ParamBinding {
  public:
    ParamBinding() = default;

    /// Each parameter of `m` becomes a leaf on `tape`.
    static ParamBinding leaves(Module<T, B>& m, Tape<T, B>& tape) {
        ParamBinding b;
        for (auto& [name, t] : named_parameters(m)) b.add(name, *t, tape.leaf(*t));
        return b;
    }
    /// Each parameter of `m` enters as a constant (no gradient).
    static ParamBinding constants(Module<T, B>& m) {
        ParamBinding b;
        for (auto& [name, t] : named_parameters(m)) b.add(name, *t, Var<T, B>(*t));
        return b;
    }

    /// The same parameters bound to other Vars (θ' for a lookahead), one per parameter.
    [[nodiscard]] ParamBinding substitute(std::vector<Var<T, B>> vars) const {
        if (vars.size() != vars_.size())
            throw ShapeError("ParamBinding::substitute: " + std::to_string(vars.size()) +
                             " Vars for " + std::to_string(vars_.size()) + " parameters");
        for (std::size_t i = 0; i < vars.size(); ++i)
            if (!(vars[i].shape() == vars_[i].shape()))
                throw ShapeError("ParamBinding::substitute: parameter '" + names_[i] +
                                 "' has shape " + vars_[i].shape().str() +
                                 " but its substitute has " + vars[i].shape().str());
        ParamBinding b = *this;
        b.vars_ = std::move(vars);
        return b;
    }

    /// Binds the parameter Tensor object `key` (the module's own member, as visit() shows
    /// it) to `v`. Keyed by the object, not its buffer: zero-size and buffer-sharing
    /// parameters stay apart.
    void add(const std::string& name, const Tensor<T, B>& key, Var<T, B> v) {
        if (!index_.emplace(&key, vars_.size()).second)
            throw ValueError("ParamBinding: parameter '" + name +
                             "' is visited twice (the same Tensor listed under two names)");
        names_.push_back(name);
        vars_.push_back(std::move(v));
    }

    /// The Var of parameter tensor `p`. Throws ValueError when `p` is not bound here — a
    /// layer that reads a parameter its visit() does not list, or a copy of one — instead of
    /// letting the parameter enter as a constant that nothing trains.
    [[nodiscard]] const Var<T, B>& get(const Tensor<T, B>& p) const {
        auto it = index_.find(&p);
        if (it == index_.end())
            throw ValueError("ParamBinding: a layer asked for a parameter of shape " +
                             p.shape().str() +
                             " that is not bound: pass the module's own parameter Tensor (not "
                             "a copy) to Context::param, and list it in the module's visit()");
        return vars_[it->second];
    }

    [[nodiscard]] const std::vector<Var<T, B>>& vars() const { return vars_; }
    [[nodiscard]] const std::vector<std::string>& names() const { return names_; }
    [[nodiscard]] std::size_t size() const { return vars_.size(); }
    const Var<T, B>& operator[](std::size_t i) const { return vars_[i]; }

  private:
    std::vector<std::string> names_;
    std::vector<Var<T, B>> vars_;
    std::unordered_map<const Tensor<T, B>*, std::size_t> index_;
};

template <class T, Backend B>
Var<T, B> Context<T, B>::param(const Tensor<T, B>& p) const {
    return params ? params->get(p) : Var<T, B>(p);
}

/// Layers applied one after the other; children are named by position or by the name given.
template <class T, Backend B>
class Sequential : public Module<T, B> {
  public:
    Sequential() = default;

    template <class M, class... Args>
    M& emplace(Args&&... args) {
        auto p = std::make_shared<M>(std::forward<Args>(args)...);
        M& ref = *p;
        add(p);
        return ref;
    }
    Sequential& add(std::shared_ptr<Module<T, B>> m, std::string name = {}) {
        if (name.empty()) name = std::to_string(layers_.size());
        layers_.emplace_back(std::move(name), std::move(m));
        return *this;
    }

    Var<T, B> forward(const Var<T, B>& x, const Context<T, B>& ctx) override {
        Var<T, B> y = x;
        for (auto& [n, m] : layers_) y = m->forward(y, ctx);
        return y;
    }
    void visit(const std::string& prefix, const Visitor<T, B>& v) override {
        for (auto& [n, m] : layers_) m->visit(join_name(prefix, n), v);
    }
    [[nodiscard]] std::string type_name() const override { return "Sequential"; }

    [[nodiscard]] std::size_t size() const { return layers_.size(); }
    Module<T, B>& operator[](std::size_t i) { return *layers_.at(i).second; }

  private:
    std::vector<std::pair<std::string, std::shared_ptr<Module<T, B>>>> layers_;
};

}  // namespace l2rw::nn
