// l2rw/autodiff/var.hpp — Var, the tape that records it, and the recording rule.
//
// A Tape is an append-only record of nodes. Each node keeps its value, the ids of its
// inputs (with their values) and its VJP rule, written with differentiable Var ops. A Tape
// object is an RAII scope: constructing it makes it the calling thread's current tape for
// (T, Backend); destroying it releases every node at once. A Var outliving its tape keeps
// its value but can no longer be differentiated (grad() and recording ops throw TapeError).
// A tape belongs to the thread that made it: recording on it, or differentiating it, from
// another thread throws TapeError (a tape is not synchronised). Scopes may end in any order.
//
// In-place writes: a node notes the version (Tensor::version) of every value it keeps, and
// grad() throws TapeError when a rule would read a value overwritten since (an optimizer
// step, Tensor::assign or a checkpoint load while the tape is still to be differentiated).
//
// Forward mode: a Var may carry a tangent (make_dual). Every op that sees a tangent on an
// input gives its result the tangent its JVP rule computes (record() below), with or
// without a tape; autodiff/jvp.hpp has the user-facing jvp().
#pragma once

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <initializer_list>
#include <iterator>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "../error.hpp"
#include "../tensor.hpp"

namespace l2rw {

template <class T, Backend B>
class Var;

namespace detail {

inline bool& grad_mode() {
    thread_local bool enabled = true;
    return enabled;
}

template <class T, Backend B>
struct VjpContext {
    std::array<Var<T, B>, 3> in;   // the inputs (on the tape when create_graph is on)
    Var<T, B> out;                 // this node's output
    Var<T, B> gout;                // the gradient flowing into the output
    std::array<bool, 3> needs{};   // which inputs need a gradient
    std::array<Var<T, B>, 3> gin;  // set by the rule for every input that needs one
};

template <class T, Backend B>
using VjpFn = std::function<void(VjpContext<T, B>&)>;

/// What a JVP rule sees: the inputs' values and tangents (undefined where an input has
/// none; never all undefined) and the op's output, none of them carrying a tangent. The
/// rule returns the output's tangent, in Var ops, of the output's shape.
template <class T, Backend B>
struct JvpContext {
    std::array<Var<T, B>, 3> in;
    std::array<Var<T, B>, 3> tin;
    Var<T, B> out;
    int nin = 0;
};

/// Whether JVP rules are recorded on the tape (forward-over-reverse: a tangent that can be
/// differentiated); off by default, so that tangents cost no tape memory.
inline bool& tangent_graph() {
    thread_local bool on = false;
    return on;
}

/// What a node keeps for its rule: bits of keep_out (its output) and keep_in0..2 (the
/// values of its inputs). A rule may read only what its op keeps; the rest is released.
enum Keep : unsigned {
    keep_none = 0,
    keep_out = 1,
    keep_in0 = 2,
    keep_in1 = 4,
    keep_in2 = 8,
    keep_all = 15
};

template <class T, Backend B>
struct Node {
    Tensor<T, B> value;  // empty unless the op keeps its output
    std::array<index_t, 3> in_id{-1, -1, -1};
    std::array<Tensor<T, B>, 3> in_val;  // empty unless the op keeps that input
    std::array<Shape, 3> in_shape;
    std::uint64_t out_version = 0;              // value.version() when recorded
    std::array<std::uint64_t, 3> in_version{};  // in_val[k].version() when recorded
    int nin = 0;
    const char* op = "leaf";
    VjpFn<T, B> vjp;  // empty for leaves
};

template <class T, Backend B>
struct TapeData : std::enable_shared_from_this<TapeData<T, B>> {
    std::deque<Node<T, B>> nodes;  // a deque: rules append while a node's rule runs
    std::atomic<bool> released{false};
    std::thread::id owner = std::this_thread::get_id();

    /// Throws TapeError unless the calling thread made this tape.
    void check_thread(const char* who) const {
        if (std::this_thread::get_id() != owner)
            throw TapeError(std::string(who) +
                            ": a Var of another thread's tape (a tape records and is "
                            "differentiated on the thread that made it; give each thread "
                            "its own Tape and model, or detach() values that cross)");
    }

    /// Appends a leaf node holding `value` and returns it as a Var.
    Var<T, B> add_leaf(const Tensor<T, B>& value) {
        check_thread("leaf");
        Node<T, B> n;
        n.value = value;
        nodes.push_back(std::move(n));
        return Var<T, B>(value, this->shared_from_this(), static_cast<index_t>(nodes.size()) - 1);
    }

    void release() {
        std::deque<Node<T, B>>().swap(nodes);
        released = true;
    }
};

/// This thread's live Tape scopes for (T, B), innermost last. A scope that ends removes
/// itself wherever it is (scopes need not end in LIFO order); one ended on another thread
/// is only marked released, and dropped here when it reaches the top.
template <class T, Backend B>
std::vector<std::shared_ptr<TapeData<T, B>>>& tape_stack() {
    thread_local std::vector<std::shared_ptr<TapeData<T, B>>> stack;
    return stack;
}

/// This thread's current tape for (T, B), or null.
template <class T, Backend B>
TapeData<T, B>* current_tape() {
    auto& s = tape_stack<T, B>();
    while (!s.empty() && s.back()->released) s.pop_back();
    return s.empty() ? nullptr : s.back().get();
}

}  // namespace detail

/// Turns recording off for its lifetime (like torch.no_grad); ops then give constants.
class NoGradGuard {
  public:
    NoGradGuard() : prev_(detail::grad_mode()) { detail::grad_mode() = false; }
    ~NoGradGuard() { detail::grad_mode() = prev_; }
    NoGradGuard(const NoGradGuard&) = delete;
    NoGradGuard& operator=(const NoGradGuard&) = delete;

  private:
    bool prev_;
};

/// Whether ops record on the tape on this thread right now.
inline bool grad_enabled() { return detail::grad_mode(); }

/// A value in a computation: a Tensor, and — when it depends on a leaf that needs a
/// gradient — the tape node that produced it.
template <class T, Backend B>
class Var {
  public:
    using value_type = T;
    using backend = B;
    using tensor_type = Tensor<T, B>;

    /// An undefined Var (no value); `defined()` is false.
    Var() = default;
    /// A constant: it never needs a gradient.
    Var(tensor_type value)
        : value_(std::move(value)), defined_(true) {}  // NOLINT: implicit by design

    [[nodiscard]] bool defined() const { return defined_; }
    [[nodiscard]] const tensor_type& value() const { return value_; }
    [[nodiscard]] const Shape& shape() const { return value_.shape(); }
    [[nodiscard]] int rank() const { return value_.rank(); }
    [[nodiscard]] index_t numel() const { return value_.numel(); }
    [[nodiscard]] index_t dim(int axis) const { return value_.dim(axis); }
    [[nodiscard]] T item() const { return value_.item(); }
    [[nodiscard]] std::vector<T> to_host() const { return value_.to_host(); }

    /// True when this Var is a node of a live tape (so a gradient can flow to it).
    [[nodiscard]] bool requires_grad() const { return tape_ && id_ >= 0 && !tape_->released; }
    /// The same value as a constant, cut off from the tape (and without a tangent).
    [[nodiscard]] Var detach() const { return Var(value_); }

    /// Forward mode: whether this Var carries a tangent (see make_dual).
    [[nodiscard]] bool has_tangent() const { return static_cast<bool>(tangent_); }
    /// The tangent this Var carries, or an undefined Var.
    [[nodiscard]] Var tangent() const { return tangent_ ? *tangent_ : Var(); }
    /// The same Var (value and tape node) without its tangent.
    [[nodiscard]] Var primal() const {
        Var v = *this;
        v.tangent_.reset();
        return v;
    }
    /// Internal (make_dual): this Var with tangent `t`, or none when `t` is undefined.
    [[nodiscard]] Var with_tangent(const Var& t) const {
        Var v = *this;
        if (t.defined())
            v.tangent_ = std::make_shared<const Var>(t.primal());
        else
            v.tangent_.reset();
        return v;
    }

    [[nodiscard]] index_t node_id() const { return id_; }
    [[nodiscard]] const std::shared_ptr<detail::TapeData<T, B>>& tape_data() const { return tape_; }

    /// Internal: a Var bound to node `id` of `tape`.
    Var(tensor_type value, std::shared_ptr<detail::TapeData<T, B>> tape, index_t id)
        : value_(std::move(value)), tape_(std::move(tape)), id_(id), defined_(true) {}

  private:
    tensor_type value_;
    std::shared_ptr<detail::TapeData<T, B>> tape_;
    index_t id_ = -1;
    bool defined_ = false;
    std::shared_ptr<const Var> tangent_;  // forward mode; null: none
};

/// An RAII recording scope. Construct one per training step (or per any computation to be
/// differentiated); it becomes this thread's current tape for (T, B) and releases all of its
/// nodes when it goes out of scope. Scopes nest; each thread has its own.
template <class T, Backend B>
class Tape {
  public:
    Tape() : data_(std::make_shared<detail::TapeData<T, B>>()) {
        detail::tape_stack<T, B>().push_back(data_);
    }
    ~Tape() {
        auto& s = detail::tape_stack<T, B>();
        const auto it = std::find(s.rbegin(), s.rend(), data_);
        if (it != s.rend()) s.erase(std::next(it).base());
        data_->release();
    }
    Tape(const Tape&) = delete;
    Tape& operator=(const Tape&) = delete;

    /// A leaf that needs a gradient, holding `value` (the buffer is shared, not copied).
    Var<T, B> leaf(const Tensor<T, B>& value) { return data_->add_leaf(value); }

    /// True when this scope is the calling thread's current tape for (T, B).
    [[nodiscard]] bool is_current() const { return detail::current_tape<T, B>() == data_.get(); }

    /// Number of nodes recorded so far.
    [[nodiscard]] std::size_t size() const { return data_->nodes.size(); }

  private:
    std::shared_ptr<detail::TapeData<T, B>> data_;

  public:
    /// Internal.
    const std::shared_ptr<detail::TapeData<T, B>>& data() const { return data_; }
};

/// A leaf needing a gradient on this thread's current tape.
template <class T, Backend B>
Var<T, B> leaf(const Tensor<T, B>& value) {
    auto* d = detail::current_tape<T, B>();
    if (!d) throw TapeError("leaf: no Tape in scope on this thread: construct an l2rw::Tape first");
    return d->add_leaf(value);
}

namespace detail {

/// The recording rule (reverse mode): a result of op `name` with `value`, computed from
/// `inputs`. When grad mode is on and some input is on a tape, the result becomes a node
/// there with rule `vjp`, keeping the values that `keep` names (Keep bits); otherwise it is
/// a constant.
template <class T, Backend B>
Var<T, B> record_node(unsigned keep, const char* name, Tensor<T, B> value,
                      std::initializer_list<const Var<T, B>*> inputs, VjpFn<T, B> vjp) {
    if (!grad_mode()) return Var<T, B>(std::move(value));
    const std::shared_ptr<TapeData<T, B>>* tape = nullptr;
    for (const Var<T, B>* v : inputs) {
        const auto& t = v->tape_data();
        if (!t || v->node_id() < 0) continue;
        if (t->released)
            throw TapeError(std::string(name) +
                            ": an operand belongs to a tape that was released "
                            "(a Var used after its Tape scope ended)");
        if (tape && tape->get() != t.get())
            throw TapeError(std::string(name) + ": operands belong to different tapes");
        tape = &t;
    }
    if (!tape) return Var<T, B>(std::move(value));
    auto owner = *tape;
    owner->check_thread(name);
    Node<T, B> n;
    if (keep & keep_out) {
        n.value = value;
        n.out_version = value.version();
    }
    n.op = name;
    n.vjp = std::move(vjp);
    for (const Var<T, B>* v : inputs) {
        const auto k = static_cast<std::size_t>(n.nin);
        n.in_id[k] = v->tape_data() ? v->node_id() : -1;
        n.in_shape[k] = v->shape();
        if (keep & (keep_in0 << n.nin)) {
            n.in_val[k] = v->value();
            n.in_version[k] = v->value().version();
        }
        ++n.nin;
    }
    owner->nodes.push_back(std::move(n));
    return Var<T, B>(std::move(value), owner, static_cast<index_t>(owner->nodes.size()) - 1);
}

/// The recording rule of every op: record_node, and then — when some input carries a
/// tangent — the output's tangent from `jvp` (a callable taking a JvpContext). The JVP rule
/// runs on constants with recording off, unless tangent_graph() and grad mode are on: then
/// it runs on the tape's Vars and is recorded, so that the tangent can be differentiated.
template <class T, Backend B, class Jvp>
Var<T, B> record(unsigned keep, const char* name, Tensor<T, B> value,
                 std::initializer_list<const Var<T, B>*> inputs, VjpFn<T, B> vjp, Jvp&& jvp) {
    bool any = false;
    for (const Var<T, B>* v : inputs) any = any || v->has_tangent();
    auto out = record_node<T, B>(keep, name, std::move(value), inputs, std::move(vjp));
    if (!any) return out;
    JvpContext<T, B> c;
    const bool recorded = tangent_graph() && grad_mode();
    for (const Var<T, B>* v : inputs) {
        const auto k = static_cast<std::size_t>(c.nin++);
        const auto tk = v->tangent();
        c.in[k] = recorded || !v->defined() ? v->primal() : v->detach();
        c.tin[k] = recorded || !tk.defined() ? tk : tk.detach();
    }
    c.out = recorded ? out : out.detach();
    Var<T, B> t;
    if (recorded) {
        t = jvp(c);
    } else {
        NoGradGuard off;
        t = jvp(c);
    }
    if (!t.defined())
        throw TapeError(std::string("jvp: the rule of op '") + name + "' gave no tangent");
    if (!(t.shape() == out.shape()))
        throw ShapeError(std::string("jvp: the rule of op '") + name +
                         "' gave a tangent of shape " + t.shape().str() +
                         " for an output of shape " + out.shape().str());
    return out.with_tangent(t);
}

}  // namespace detail
}  // namespace l2rw
