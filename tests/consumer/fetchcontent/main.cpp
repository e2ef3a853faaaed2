// Consumer-side test (fetchcontent): l2rw must be usable through the l2rw::l2rw target alone.
#include <l2rw/l2rw.hpp>

int main() {
    static_assert(true);
    return 0;
}
