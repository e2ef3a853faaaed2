# Opt-in engines for users of l2rw (the library target itself imposes none of them):
#
#   l2rw::openmp  OpenMP from the compiler: the Cpu backend's kernels, its convolutions and
#                 Eigen's GEMM run on num_threads() threads (l2rw/backend/parallel.hpp).
#   l2rw::blas    Eigen's matrix products routed to a BLAS (EIGEN_USE_BLAS), OpenBLAS's
#                 OpenMP build where Debian has it (libopenblas-openmp-dev), so that it runs
#                 single-threaded inside l2rw's own parallel regions instead of fighting them.
#   l2rw::onednn  oneDNN (find_package(dnnl), Debian libdnnl-dev) for the Cpu backend's float
#                 convolutions (l2rw/backend/onednn.hpp); brings l2rw::openmp.
#   l2rw::mpi     MPI (find_package(MPI)) for dist::Mpi, data-parallel steps over ranks.
#
# All are INTERFACE targets, defined when their dependency is found, installed and exported
# beside l2rw::l2rw. Sets L2RW_HAS_OPENMP, L2RW_HAS_BLAS, L2RW_HAS_ONEDNN and L2RW_HAS_MPI.

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

# oneDNN (Debian: libdnnl-dev, built on OpenMP): l2rw::onednn runs the Cpu backend's float
# convolutions through oneDNN's primitives (l2rw/backend/onednn.hpp); it brings l2rw::openmp,
# whose threads oneDNN shares.
# Found by its library and header: Debian's dnnl-config.cmake also demands the OpenCL
# development files, which the CPU engine does not use.
find_library(L2RW_ONEDNN_LIBRARY NAMES dnnl DOC "oneDNN's library, behind l2rw::onednn")
find_path(L2RW_ONEDNN_INCLUDE_DIR oneapi/dnnl/dnnl.hpp DOC "The folder holding oneapi/dnnl/dnnl.hpp")
set(L2RW_HAS_ONEDNN FALSE)
if(L2RW_ONEDNN_LIBRARY AND L2RW_ONEDNN_INCLUDE_DIR AND L2RW_HAS_OPENMP)
    set(L2RW_HAS_ONEDNN TRUE)
    add_library(l2rw_onednn INTERFACE)
    add_library(l2rw::onednn ALIAS l2rw_onednn)
    set_target_properties(l2rw_onednn PROPERTIES EXPORT_NAME onednn)
    target_compile_definitions(l2rw_onednn INTERFACE L2RW_WITH_ONEDNN)
    target_include_directories(l2rw_onednn INTERFACE "${L2RW_ONEDNN_INCLUDE_DIR}")
    target_link_libraries(l2rw_onednn INTERFACE l2rw_openmp "${L2RW_ONEDNN_LIBRARY}")
    message(STATUS "l2rw: l2rw::onednn with ${L2RW_ONEDNN_LIBRARY}")
elseif(L2RW_REQUIRE_ONEDNN)
    message(FATAL_ERROR "l2rw: L2RW_REQUIRE_ONEDNN is ON but no oneDNN was found (libdnnl-dev)")
else()
    message(STATUS "l2rw: no oneDNN found (libdnnl-dev): l2rw::onednn is not defined")
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
option(L2RW_USE_ONEDNN "Build l2rw's examples and benchmarks with l2rw::onednn (when found)" ON)

function(l2rw_target_optins target)
    if(L2RW_USE_OPENMP AND L2RW_HAS_OPENMP)
        target_link_libraries(${target} PRIVATE l2rw::openmp)
    endif()
    if(L2RW_USE_BLAS AND L2RW_HAS_BLAS)
        target_link_libraries(${target} PRIVATE l2rw::blas)
    endif()
    if(L2RW_USE_ONEDNN AND L2RW_HAS_ONEDNN)
        target_link_libraries(${target} PRIVATE l2rw::onednn)
    endif()
endfunction()
