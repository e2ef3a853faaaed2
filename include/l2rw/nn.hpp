// l2rw/nn.hpp — layers, models and losses.
#pragma once

#include "nn/activation.hpp"
#include "nn/batchnorm.hpp"
#include "nn/conv.hpp"
#include "nn/dropout.hpp"
#include "nn/functional.hpp"
#include "nn/init.hpp"
#include "nn/linear.hpp"
#include "nn/loss.hpp"
#include "nn/models.hpp"
#include "nn/module.hpp"
#include "nn/pool.hpp"
#include "nn/residual.hpp"
