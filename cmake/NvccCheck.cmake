# nvcc compile check (compile only; no GPU and no enable_language(CUDA) needed).
#
#   l2rw_add_nvcc_check(<target> SOURCE <file.cu> ARCHS <sm_90 sm_80 ...> [INCLUDE_TARGETS <tgt>...])
#
# Adds the custom target <target> (part of `all`) that compiles SOURCE once per architecture with
# the nvcc found by find_program, using the include directories of l2rw and INCLUDE_TARGETS.
function(l2rw_add_nvcc_check target)
    cmake_parse_arguments(PARSE_ARGV 1 ARG "" "SOURCE" "ARCHS;INCLUDE_TARGETS")

    if(NOT EXISTS "${ARG_SOURCE}")
        message(WARNING "l2rw: L2RW_NVCC_CHECK is ON but ${ARG_SOURCE} does not exist; skipping")
        return()
    endif()

    find_package(CUDAToolkit QUIET)
    find_program(L2RW_NVCC_EXECUTABLE nvcc
        HINTS "${CUDAToolkit_BIN_DIR}" ENV CUDA_PATH
        PATHS /usr/local/cuda/bin
        PATH_SUFFIXES bin
        DOC "nvcc used by the nvcc_check target")
    if(NOT L2RW_NVCC_EXECUTABLE)
        message(WARNING "l2rw: L2RW_NVCC_CHECK is ON but nvcc was not found; skipping")
        return()
    endif()
    message(STATUS "l2rw: nvcc check with ${L2RW_NVCC_EXECUTABLE} for ${ARG_ARCHS}")

    set(includes "-I${PROJECT_SOURCE_DIR}/include")
    foreach(tgt IN LISTS ARG_INCLUDE_TARGETS)
        get_target_property(dirs ${tgt} INTERFACE_INCLUDE_DIRECTORIES)
        if(NOT dirs)
            continue()
        endif()
        # Drop the compiler's implicit include dirs: -I/usr/include breaks libstdc++'s
        # #include_next.
        list(REMOVE_ITEM dirs ${CMAKE_CXX_IMPLICIT_INCLUDE_DIRECTORIES})
        foreach(dir IN LISTS dirs)
            list(APPEND includes "-I${dir}")
        endforeach()
    endforeach()
    list(REMOVE_DUPLICATES includes)

    file(GLOB_RECURSE l2rw_headers CONFIGURE_DEPENDS "${PROJECT_SOURCE_DIR}/include/*.hpp")

    set(outputs "")
    foreach(arch IN LISTS ARG_ARCHS)
        set(obj "${CMAKE_CURRENT_BINARY_DIR}/${target}_${arch}.o")
        add_custom_command(
            OUTPUT "${obj}"
            COMMAND "${L2RW_NVCC_EXECUTABLE}"
                -ccbin "${CMAKE_CXX_COMPILER}"
                -std=c++20 -arch=${arch} -x cu -c
                --expt-relaxed-constexpr --extended-lambda
                -diag-suppress 20012
                ${includes}
                -o "${obj}" "${ARG_SOURCE}"
            DEPENDS "${ARG_SOURCE}" ${l2rw_headers}
            COMMENT "nvcc check (${arch}): ${ARG_SOURCE}"
            COMMAND_EXPAND_LISTS
            VERBATIM)
        list(APPEND outputs "${obj}")
    endforeach()

    add_custom_target(${target} ALL DEPENDS ${outputs})
endfunction()
