# Opt-in engines for users of l2rw (the library target itself imposes none of them):
#
#   l2rw::openmp  OpenMP from the compiler: the Cpu backend's kernels, its convolutions and
#                 Eigen's GEMM run on num_threads() threads (l2rw/backend/parallel.hpp).
#   l2rw::blas    Eigen's matrix products routed to a BLAS (EIGEN_USE_BLAS), OpenBLAS's
#                 OpenMP build where Debian has it (libopenblas-openmp-dev), so that it runs
#                 single-threaded inside l2rw's own parallel regions instead of fighting them.
#   l2rw::mpi     MPI (find_package(MPI)) for dist::Mpi, data-parallel steps over ranks.
#
# Both are INTERFACE targets, defined when their dependency is found, installed and exported
# beside l2rw::l2rw. Sets L2RW_HAS_OPENMP, L2RW_HAS_BLAS and L2RW_HAS_MPI.

find_package(OpenMP QUIET COMPONENTS CXX)
set(L2RW_HAS_OPENMP FALSE)
if(TARGET OpenMP::OpenMP_CXX)
    set(L2RW_HAS_OPENMP TRUE)
    add_library(l2rw_openmp INTERFACE)
    add_library(l2rw::openmp ALIAS l2rw_openmp)
    set_target_properties(l2rw_openmp PROPERTIES EXPORT_NAME openmp)
    target_link_libraries(l2rw_openmp INTERFACE l2rw OpenMP::OpenMP_CXX)
endif()

# OpenBLAS: the OpenMP build first (Debian keeps each build in a folder of its own).
find_library(L2RW_OPENBLAS_LIBRARY
    NAMES openblas
    HINTS "/usr/lib/${CMAKE_LIBRARY_ARCHITECTURE}/openblas-openmp"
    DOC "The BLAS library behind l2rw::blas (OpenBLAS, preferably its OpenMP build)")
set(L2RW_HAS_BLAS FALSE)
if(L2RW_OPENBLAS_LIBRARY AND L2RW_HAS_OPENMP)
    set(L2RW_HAS_BLAS TRUE)
    add_library(l2rw_blas INTERFACE)
    add_library(l2rw::blas ALIAS l2rw_blas)
    set_target_properties(l2rw_blas PROPERTIES EXPORT_NAME blas)
    target_compile_definitions(l2rw_blas INTERFACE EIGEN_USE_BLAS)
    target_link_libraries(l2rw_blas INTERFACE l2rw_openmp "${L2RW_OPENBLAS_LIBRARY}")
    message(STATUS "l2rw: l2rw::blas routes Eigen's products to ${L2RW_OPENBLAS_LIBRARY}")
else()
    message(STATUS "l2rw: no OpenBLAS found (libopenblas-openmp-dev): l2rw::blas is not defined")
endif()

# MPI (Debian: libopenmpi-dev): l2rw::mpi, for l2rw/dist/mpi.hpp (the communicator of
# data-parallel steps). Its tests, example and benchmark are built when it is found.
find_package(MPI QUIET COMPONENTS CXX)
set(L2RW_HAS_MPI FALSE)
if(TARGET MPI::MPI_CXX)
    set(L2RW_HAS_MPI TRUE)
    add_library(l2rw_mpi INTERFACE)
    add_library(l2rw::mpi ALIAS l2rw_mpi)
    set_target_properties(l2rw_mpi PROPERTIES EXPORT_NAME mpi)
    target_link_libraries(l2rw_mpi INTERFACE l2rw MPI::MPI_CXX)
    message(STATUS "l2rw: l2rw::mpi with MPI ${MPI_CXX_VERSION} (${MPIEXEC_EXECUTABLE})")
elseif(L2RW_REQUIRE_MPI)
    message(FATAL_ERROR "l2rw: L2RW_REQUIRE_MPI is ON but no MPI was found (libopenmpi-dev)")
else()
    message(STATUS "l2rw: no MPI found (libopenmpi-dev): l2rw::mpi is not defined")
endif()

# The project's own examples and benchmarks use the opt-ins that were found.
option(L2RW_USE_OPENMP "Build l2rw's examples and benchmarks with l2rw::openmp" ON)
option(L2RW_USE_BLAS "Build l2rw's examples and benchmarks with l2rw::blas (when found)" ON)

function(l2rw_target_optins target)
    if(L2RW_USE_OPENMP AND L2RW_HAS_OPENMP)
        target_link_libraries(${target} PRIVATE l2rw::openmp)
    endif()
    if(L2RW_USE_BLAS AND L2RW_HAS_BLAS)
        target_link_libraries(${target} PRIVATE l2rw::blas)
    endif()
endfunction()
