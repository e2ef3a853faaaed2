# Runs an example program with bad flags (or a --resume it must refuse) and checks that it
# fails at once: a non-zero exit status, nothing on stdout, and stderr matching WANT. Called
# by tests/examples.cmake as
#
#   cmake -DPROGRAM=<exe> -DARGS=<a|b|...> -DWANT=<regex> -DOUT_DIR=<dir>
#         [-DSETUP_ARGS=<a|b|...>] -P check_bad_flags.cmake
#
# SETUP_ARGS, when given, is a run that must succeed first in OUT_DIR (it makes the checkpoint
# a bad --resume is then refused against). --out OUT_DIR is added to both unless ARGS names
# --out itself or NO_OUT is set (a program without --out). Exit status 77 (no data) prints
# L2RW_EXAMPLE_SKIPPED.
cmake_minimum_required(VERSION 3.25)
foreach(var PROGRAM ARGS WANT OUT_DIR)
    if(NOT DEFINED ${var} OR "${${var}}" STREQUAL "")
        message(FATAL_ERROR "check_bad_flags: -D${var}=... is required")
    endif()
endforeach()
string(REPLACE "|" ";" ARGS "${ARGS}")
set(out_args --out "${OUT_DIR}")
if("--out" IN_LIST ARGS OR NO_OUT)
    set(out_args "")
endif()
file(REMOVE_RECURSE "${OUT_DIR}")
file(MAKE_DIRECTORY "${OUT_DIR}")

if(DEFINED SETUP_ARGS AND NOT "${SETUP_ARGS}" STREQUAL "")
    string(REPLACE "|" ";" SETUP_ARGS "${SETUP_ARGS}")
    execute_process(COMMAND "${PROGRAM}" ${SETUP_ARGS} --out "${OUT_DIR}"
        OUTPUT_VARIABLE out ERROR_VARIABLE err RESULT_VARIABLE rc)
    if(rc EQUAL 77)
        message("L2RW_EXAMPLE_SKIPPED: ${PROGRAM} found no data (exit status 77)")
        return()
    endif()
    if(NOT rc EQUAL 0)
        message(FATAL_ERROR "the set-up run failed (${rc}):\n${out}\n${err}")
    endif()
endif()

execute_process(COMMAND "${PROGRAM}" ${ARGS} ${out_args}
    OUTPUT_VARIABLE out ERROR_VARIABLE err RESULT_VARIABLE rc)
string(JOIN " " cmd ${ARGS})
if(rc EQUAL 77)
    message("L2RW_EXAMPLE_SKIPPED: ${PROGRAM} found no data (exit status 77)")
    return()
endif()
if(rc EQUAL 0)
    message(FATAL_ERROR "${PROGRAM} ${cmd} succeeded; it must fail.\n--- stdout ---\n${out}")
endif()
if(NOT out STREQUAL "")
    message(FATAL_ERROR "${PROGRAM} ${cmd} printed to stdout before failing:\n${out}\n"
        "--- stderr ---\n${err}")
endif()
if(NOT err MATCHES "${WANT}")
    message(FATAL_ERROR "${PROGRAM} ${cmd}: stderr does not match '${WANT}':\n${err}")
endif()
message(STATUS "${PROGRAM} ${cmd}: exit ${rc}, stderr: ${err}")
