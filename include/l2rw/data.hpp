// l2rw/data.hpp — the data layer: host datasets, IDX (MNIST, Fashion-MNIST) and CIFAR
// loaders, the paper's imbalance and label-noise set-ups, normalisation, augmentation and
// batch samplers (namespace l2rw::data). Link zlib (the l2rw::l2rw target does).
#pragma once

#include "data/cifar.hpp"
#include "data/dataset.hpp"
#include "data/error.hpp"
#include "data/file.hpp"
#include "data/idx.hpp"
#include "data/sampler.hpp"
#include "data/shuffle.hpp"
#include "data/transforms.hpp"
