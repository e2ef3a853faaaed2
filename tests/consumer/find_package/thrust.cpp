// Consumer-side test (find_package, when l2rw was installed with Thrust): a Thrust<OMP>
// program built through the installed l2rw::thrust_omp target alone.
#include <cmath>
#include <cstdio>
#include <l2rw/backend/thrust.hpp>
#include <l2rw/l2rw.hpp>

int main() {
    using B = l2rw::Thrust<l2rw::OMP>;
    l2rw::Tape<double, B> tape;
    auto x = tape.leaf(l2rw::Tensor<double, B>::scalar(0.5));
    auto y = x * tanh(x);
    const double dy = l2rw::grad(y, x).item();
    const double t = std::tanh(0.5);
    const double expected = t + 0.5 * (1.0 - t * t);
    std::printf("Thrust<OMP>: d/dx x*tanh(x) at 0.5 = %.12f (expected %.12f)\n", dy, expected);
    return std::abs(dy - expected) < 1e-12 ? 0 : 1;
}
