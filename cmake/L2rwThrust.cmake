# Detects the Thrust/CUB (CCCL) headers and defines l2rw::thrust_omp, an INTERFACE target that
# compiles Thrust for the OpenMP device system (runs on the CPU, no GPU or nvcc needed). It is
# installed and exported beside l2rw::l2rw (l2rwThrustTargets.cmake) with the absolute path of
# the headers it found; the installed l2rwConfig.cmake checks that they are still there.
#
# Sets L2RW_HAS_THRUST (TRUE/FALSE) and the cache variable L2RW_THRUST_INCLUDE_DIR.
# L2RW_WITH_THRUST=OFF skips the detection (the tsan preset: Thrust's OpenMP system would bring
# libgomp, which ThreadSanitizer cannot see into).

option(L2RW_WITH_THRUST "Look for Thrust and build the Thrust<OMP> backend's tests" ON)
set(L2RW_HAS_THRUST FALSE)
if(NOT L2RW_WITH_THRUST)
    message(STATUS "l2rw: Thrust not looked for (L2RW_WITH_THRUST is OFF)")
    return()
endif()

if(NOT L2RW_THRUST_INCLUDE_DIR)
    find_package(CUDAToolkit QUIET)
endif()

set(_l2rw_thrust_hints /usr/local/cuda/include/cccl)
foreach(_dir IN LISTS CUDAToolkit_INCLUDE_DIRS)
    list(APPEND _l2rw_thrust_hints "${_dir}/cccl" "${_dir}")
endforeach()

find_path(L2RW_THRUST_INCLUDE_DIR
    NAMES thrust/device_vector.h
    HINTS ${_l2rw_thrust_hints}
    DOC "Directory containing thrust/device_vector.h (CCCL)")
unset(_l2rw_thrust_hints)

find_package(OpenMP QUIET COMPONENTS CXX)

if(EXISTS "${L2RW_THRUST_INCLUDE_DIR}/thrust/device_vector.h" AND TARGET OpenMP::OpenMP_CXX)
    set(L2RW_HAS_THRUST TRUE)
    if(NOT TARGET l2rw_thrust_omp)
        add_library(l2rw_thrust_omp INTERFACE)
        add_library(l2rw::thrust_omp ALIAS l2rw_thrust_omp)
        set_target_properties(l2rw_thrust_omp PROPERTIES EXPORT_NAME thrust_omp)
        # SYSTEM: warnings inside Thrust/CUB are not ours to fix (and must not break -Werror).
        target_include_directories(l2rw_thrust_omp SYSTEM INTERFACE "${L2RW_THRUST_INCLUDE_DIR}")
        target_compile_definitions(l2rw_thrust_omp INTERFACE
            THRUST_DEVICE_SYSTEM=THRUST_DEVICE_SYSTEM_OMP)
        target_link_libraries(l2rw_thrust_omp INTERFACE l2rw OpenMP::OpenMP_CXX)
    endif()
    message(STATUS "l2rw: Thrust found in ${L2RW_THRUST_INCLUDE_DIR} (OpenMP device system)")
else()
    set(_why "")
    if(NOT EXISTS "${L2RW_THRUST_INCLUDE_DIR}/thrust/device_vector.h")
        string(APPEND _why " thrust/device_vector.h not found (set L2RW_THRUST_INCLUDE_DIR);")
    endif()
    if(NOT TARGET OpenMP::OpenMP_CXX)
        string(APPEND _why " OpenMP for C++ not found;")
    endif()
    if(L2RW_REQUIRE_THRUST)
        message(FATAL_ERROR "l2rw: L2RW_REQUIRE_THRUST is ON but Thrust is unusable:${_why}")
    else()
        message(STATUS "l2rw: Thrust backend disabled:${_why}")
    endif()
    unset(_why)
endif()
