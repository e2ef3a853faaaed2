# Consumer-side packaging test, run as `cmake -P` by CTest (see tests/CMakeLists.txt).
#
# Configures, builds and runs the tiny project CONSUMER_SOURCE_DIR the way a user would:
#   find_package     : installs the l2rw build tree (cmake --install) into a scratch prefix and
#                      points the consumer at it via CMAKE_PREFIX_PATH; with
#                      CONSUMER_EXPECT_THRUST it also builds and runs consumer_thrust, a
#                      Thrust<OMP> program linked to the installed l2rw::thrust_omp.
#   add_subdirectory : the consumer does add_subdirectory(${L2RW_SOURCE_DIR} l2rw-build).
#   fetchcontent     : the consumer uses FetchContent, redirected to the local source tree
#                      through FETCHCONTENT_SOURCE_DIR_L2RW (no network).
#
# Inputs (-D): CONSUMER_KIND, CONSUMER_SOURCE_DIR, CONSUMER_WORK_DIR, L2RW_SOURCE_DIR,
# L2RW_BUILD_DIR, CONSUMER_GENERATOR, CONSUMER_MAKE_PROGRAM, CONSUMER_CXX_COMPILER,
# CONSUMER_BUILD_TYPE, CONSUMER_PREFIX_PATH, CONSUMER_EXPECT_THRUST, CONSUMER_EXPECT_MPI.
cmake_minimum_required(VERSION 3.25)

foreach(var CONSUMER_KIND CONSUMER_SOURCE_DIR CONSUMER_WORK_DIR L2RW_SOURCE_DIR L2RW_BUILD_DIR)
    if(NOT DEFINED ${var} OR "${${var}}" STREQUAL "")
        message(FATAL_ERROR "L2rwConsumerTest: ${var} is not set")
    endif()
endforeach()
if(NOT CONSUMER_BUILD_TYPE)
    set(CONSUMER_BUILD_TYPE Release)
endif()

function(run step)
    string(REPLACE ";" " " pretty "${ARGN}")
    message(STATUS "[${CONSUMER_KIND}] ${step}: ${pretty}")
    execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc)
    if(NOT rc EQUAL 0)
        message(FATAL_ERROR "[${CONSUMER_KIND}] ${step} failed (${rc})")
    endif()
endfunction()

set(build_dir "${CONSUMER_WORK_DIR}/build")
set(prefix "${CONSUMER_WORK_DIR}/prefix")
file(REMOVE_RECURSE "${CONSUMER_WORK_DIR}")
file(MAKE_DIRECTORY "${CONSUMER_WORK_DIR}")

set(configure_args
    -S "${CONSUMER_SOURCE_DIR}" -B "${build_dir}"
    "-DCMAKE_BUILD_TYPE=${CONSUMER_BUILD_TYPE}"
    # Only what we hand over may be found: no user/system package registries.
    -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF
    -DCMAKE_FIND_USE_SYSTEM_PACKAGE_REGISTRY=OFF)
if(CONSUMER_GENERATOR)
    list(APPEND configure_args -G "${CONSUMER_GENERATOR}")
endif()
if(CONSUMER_MAKE_PROGRAM)
    list(APPEND configure_args "-DCMAKE_MAKE_PROGRAM=${CONSUMER_MAKE_PROGRAM}")
endif()
if(CONSUMER_CXX_COMPILER)
    list(APPEND configure_args "-DCMAKE_CXX_COMPILER=${CONSUMER_CXX_COMPILER}")
endif()

set(prefix_path "${CONSUMER_PREFIX_PATH}")
if(CONSUMER_KIND STREQUAL "find_package")
    run(install "${CMAKE_COMMAND}" --install "${L2RW_BUILD_DIR}" --prefix "${prefix}"
        --config "${CONSUMER_BUILD_TYPE}")
    list(PREPEND prefix_path "${prefix}")
    list(APPEND configure_args "-DL2RW_EXPECTED_PREFIX=${prefix}")
    if(CONSUMER_EXPECT_THRUST)
        list(APPEND configure_args -DL2RW_EXPECT_THRUST=ON)
    endif()
    if(CONSUMER_EXPECT_MPI)
        list(APPEND configure_args -DL2RW_EXPECT_MPI=ON)
    endif()
elseif(CONSUMER_KIND STREQUAL "add_subdirectory")
    list(APPEND configure_args "-DL2RW_SOURCE_DIR=${L2RW_SOURCE_DIR}")
elseif(CONSUMER_KIND STREQUAL "fetchcontent")
    list(APPEND configure_args
        "-DFETCHCONTENT_SOURCE_DIR_L2RW=${L2RW_SOURCE_DIR}"
        -DFETCHCONTENT_FULLY_DISCONNECTED=ON)
else()
    message(FATAL_ERROR "L2rwConsumerTest: unknown CONSUMER_KIND '${CONSUMER_KIND}'")
endif()
if(prefix_path)
    string(REPLACE ";" "\\;" prefix_path "${prefix_path}")
    list(APPEND configure_args "-DCMAKE_PREFIX_PATH=${prefix_path}")
endif()

run(configure "${CMAKE_COMMAND}" ${configure_args})
run(build "${CMAKE_COMMAND}" --build "${build_dir}" --config "${CONSUMER_BUILD_TYPE}")

set(programs consumer)
if(CONSUMER_KIND STREQUAL "find_package" AND CONSUMER_EXPECT_THRUST)
    list(APPEND programs consumer_thrust)
endif()
if(CONSUMER_KIND STREQUAL "find_package" AND CONSUMER_EXPECT_MPI)
    list(APPEND programs consumer_mpi)
endif()
foreach(program IN LISTS programs)
    set(exe "${build_dir}/${program}")
    if(NOT EXISTS "${exe}" AND EXISTS "${build_dir}/${CONSUMER_BUILD_TYPE}/${program}")
        set(exe "${build_dir}/${CONSUMER_BUILD_TYPE}/${program}")
    endif()
    run(run "${exe}")
endforeach()
