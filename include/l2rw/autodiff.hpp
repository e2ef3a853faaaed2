// l2rw/autodiff.hpp — the autodiff engine: Var, Tape, ops and grad().
#pragma once

#include "autodiff/grad.hpp"
#include "autodiff/jvp.hpp"
#include "autodiff/ops.hpp"
#include "autodiff/var.hpp"
