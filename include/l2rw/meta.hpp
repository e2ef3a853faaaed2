// l2rw/meta.hpp — the reweighter (Algorithm 1), the baseline weighting policies and the
// training loop they all plug into.
#pragma once

#include "meta/policies.hpp"
#include "meta/reweighter.hpp"
#include "meta/train.hpp"
