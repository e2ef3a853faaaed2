// l2rw/optim.hpp — optimizers (SGD, Adam) and learning-rate schedules.
#pragma once

#include "optim/adam.hpp"
#include "optim/schedule.hpp"
#include "optim/sgd.hpp"
