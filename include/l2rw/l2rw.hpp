// l2rw/l2rw.hpp — one include for users of the CPU backend.
// The Thrust backend is opt-in: include <l2rw/backend/thrust.hpp> as well.
#pragma once

#include "autodiff.hpp"
#include "backend/cpu.hpp"
#include "data.hpp"
#include "io/checkpoint.hpp"
#include "meta.hpp"
#include "nn.hpp"
#include "optim.hpp"
#include "tensor.hpp"
