// l2rw/meta.hpp — the reweighter (Algorithm 1).
#pragma once

#include "meta/reweighter.hpp"
