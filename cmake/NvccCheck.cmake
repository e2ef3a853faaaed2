# nvcc build of the test suite for the Thrust<CUDA> backend (no enable_language(CUDA) needed).
#
#   l2rw_add_nvcc_check(<target> MAIN <main.cu> SOURCES <test.cpp>... ARCHS <sm_90 ...>
#                       [INCLUDE_TARGETS <tgt>...] [LIBS <-lfoo>...])
#
# Compiles MAIN and every SOURCE as CUDA (-x cu) with the nvcc found by find_program, once per
# architecture; the objects of the first architecture are linked into <target> and registered
# as the CTest test `nvcc.<target>`, whose main skips with a message when no CUDA device is
# present (these machines have none: there the check is that it compiles, links and starts).
function(l2rw_add_nvcc_check target)
    cmake_parse_arguments(PARSE_ARGV 1 ARG "" "MAIN" "SOURCES;ARCHS;INCLUDE_TARGETS;LIBS")

    find_package(CUDAToolkit QUIET)
    find_program(L2RW_NVCC_EXECUTABLE nvcc
        HINTS "${CUDAToolkit_BIN_DIR}" ENV CUDA_PATH
        PATHS /usr/local/cuda/bin
        PATH_SUFFIXES bin
        DOC "nvcc used by the nvcc check")
    if(NOT L2RW_NVCC_EXECUTABLE)
        if(L2RW_REQUIRE_THRUST)
            message(FATAL_ERROR "l2rw: L2RW_NVCC_CHECK is ON but nvcc was not found")
        endif()
        message(WARNING "l2rw: L2RW_NVCC_CHECK is ON but nvcc was not found; skipping")
        return()
    endif()
    message(STATUS "l2rw: nvcc check with ${L2RW_NVCC_EXECUTABLE} for ${ARG_ARCHS}")

    set(includes "-I${PROJECT_SOURCE_DIR}/include" "-I${CMAKE_CURRENT_SOURCE_DIR}")
    foreach(tgt IN LISTS ARG_INCLUDE_TARGETS)
        get_target_property(dirs ${tgt} INTERFACE_INCLUDE_DIRECTORIES)
        if(NOT dirs)
            continue()
        endif()
        # Drop the compiler's implicit include dirs: -I/usr/include breaks libstdc++'s
        # #include_next.
        list(REMOVE_ITEM dirs ${CMAKE_CXX_IMPLICIT_INCLUDE_DIRECTORIES})
        foreach(dir IN LISTS dirs)
            list(APPEND includes "-isystem" "${dir}")
        endforeach()
    endforeach()
    # (no REMOVE_DUPLICATES: "-isystem" repeats on purpose)

    file(GLOB_RECURSE l2rw_headers CONFIGURE_DEPENDS "${PROJECT_SOURCE_DIR}/include/*.hpp"
        "${CMAKE_CURRENT_SOURCE_DIR}/*.hpp")

    set(all_objects "")
    set(link_objects "")
    list(GET ARG_ARCHS 0 first_arch)
    foreach(arch IN LISTS ARG_ARCHS)
        foreach(src IN LISTS ARG_MAIN ARG_SOURCES)
            get_filename_component(stem "${src}" NAME_WE)
            set(obj "${CMAKE_CURRENT_BINARY_DIR}/${target}/${arch}/${stem}.o")
            add_custom_command(
                OUTPUT "${obj}"
                COMMAND "${CMAKE_COMMAND}" -E make_directory "${CMAKE_CURRENT_BINARY_DIR}/${target}/${arch}"
                COMMAND "${L2RW_NVCC_EXECUTABLE}"
                    -ccbin "${CMAKE_CXX_COMPILER}"
                    -std=c++20 -arch=${arch} -x cu -c
                    --expt-relaxed-constexpr
                    -diag-suppress 20012
                    -Xcompiler=-Wall,-Wextra $<$<BOOL:${L2RW_WERROR}>:-Werror=all-warnings>
                    ${includes}
                    -o "${obj}" "${src}"
                DEPENDS "${src}" ${l2rw_headers}
                COMMENT "nvcc (${arch}): ${stem}"
                COMMAND_EXPAND_LISTS
                VERBATIM)
            list(APPEND all_objects "${obj}")
            if(arch STREQUAL first_arch)
                list(APPEND link_objects "${obj}")
            endif()
        endforeach()
    endforeach()

    set(exe "${CMAKE_CURRENT_BINARY_DIR}/${target}/${target}")
    add_custom_command(
        OUTPUT "${exe}"
        COMMAND "${L2RW_NVCC_EXECUTABLE}" -ccbin "${CMAKE_CXX_COMPILER}" -arch=${first_arch}
            -o "${exe}" ${link_objects} ${ARG_LIBS}
        DEPENDS ${link_objects}
        COMMENT "nvcc link: ${target}"
        COMMAND_EXPAND_LISTS
        VERBATIM)
    add_custom_target(${target} ALL DEPENDS ${all_objects} "${exe}")
    add_test(NAME nvcc.${target} COMMAND "${exe}")
    set_tests_properties(nvcc.${target} PROPERTIES LABELS "nvcc")
endfunction()
