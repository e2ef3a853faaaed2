# A run interrupted and resumed must report what the uninterrupted run reports. Called by
# tests/examples.cmake as
#
#   cmake -DPROGRAM=<exe> -DARGS=<a|b|...> -DSESSION=<k> -DCSVS=<results.csv|evals.csv>
#         -DOUT_DIR=<dir> -P check_resume_equivalence.cmake
#
# Runs ARGS (which must checkpoint) once straight through into OUT_DIR/straight, and into
# OUT_DIR/split three times: with --session-steps SESSION (every run stops there), with
# --resume (they finish), and with --resume again (all finished: only evaluated again).
# After the second and the third, every CSV in CSVS must equal the straight run's, except the
# columns that say how this invocation ran (timing, the step it resumed from, the steps it
# ran). With -DCARRY=ON a fourth pass deletes the checkpoints and runs --resume once more: every
# run must be taken from the CSVs (examples/finished_runs.hpp) and they must stay equal. Exit
# status 77 (no data) prints L2RW_EXAMPLE_SKIPPED.
cmake_minimum_required(VERSION 3.25)
foreach(var PROGRAM ARGS SESSION CSVS OUT_DIR)
    if(NOT DEFINED ${var} OR "${${var}}" STREQUAL "")
        message(FATAL_ERROR "check_resume_equivalence: -D${var}=... is required")
    endif()
endforeach()
string(REPLACE "|" ";" ARGS "${ARGS}")
string(REPLACE "|" ";" CSVS "${CSVS}")
set(volatile seconds seconds_per_step resumed_from_step steps_run)
file(REMOVE_RECURSE "${OUT_DIR}")

function(run dir)
    execute_process(COMMAND "${PROGRAM}" ${ARGS} ${ARGN} --out "${OUT_DIR}/${dir}"
        OUTPUT_VARIABLE out ERROR_VARIABLE err RESULT_VARIABLE rc)
    file(WRITE "${OUT_DIR}/${dir}.txt" "${out}")
    if(rc EQUAL 77)
        message("L2RW_EXAMPLE_SKIPPED: ${PROGRAM} found no data (exit status 77)")
        set(skipped TRUE PARENT_SCOPE)
        return()
    endif()
    if(NOT rc EQUAL 0)
        string(JOIN " " cmd ${ARGS} ${ARGN})
        message(FATAL_ERROR "${PROGRAM} ${cmd} failed (${rc}):\n${out}\n${err}")
    endif()
    set(last_output "${out}" PARENT_SCOPE)
endfunction()

# The CSV `file` with the volatile columns left out, one line per row ('|' for ';').
function(stable file out_var)
    if(NOT EXISTS "${file}")
        message(FATAL_ERROR "${file} was not written")
    endif()
    file(READ "${file}" text)
    string(REPLACE ";" "|" text "${text}")
    string(REGEX REPLACE "\n$" "" text "${text}")
    string(REPLACE "\n" ";" lines "${text}")
    list(GET lines 0 header)
    string(REPLACE "," ";" header "${header}")
    set(keep "")
    set(i 0)
    foreach(h IN LISTS header)
        if(NOT h IN_LIST volatile)
            list(APPEND keep ${i})
        endif()
        math(EXPR i "${i} + 1")
    endforeach()
    set(result "")
    foreach(line IN LISTS lines)
        string(REPLACE "," ";" fields "${line}")
        set(row "")
        foreach(k IN LISTS keep)
            list(GET fields ${k} f)
            string(APPEND row "${f},")
        endforeach()
        string(APPEND result "${row}\n")
    endforeach()
    set(${out_var} "${result}" PARENT_SCOPE)
endfunction()

run(straight)
if(skipped)
    return()
endif()
run(split --session-steps ${SESSION})
if(NOT last_output MATCHES "stopped early \\(--session-steps\\)")
    message(FATAL_ERROR "the --session-steps ${SESSION} run did not stop early:\n${last_output}")
endif()
set(passes resumed "resumed again")
if(CARRY)
    list(APPEND passes "resumed without checkpoints")
endif()
foreach(pass IN LISTS passes)
    if(pass STREQUAL "resumed without checkpoints")
        # A fresh clone: the CSVs (and sweep.txt) are there, the checkpoints are not.
        file(GLOB checkpoints "${OUT_DIR}/split/*.l2ck")
        file(REMOVE ${checkpoints})
        set(want_line "finished in an earlier sitting")
        set(CARRY_PASS TRUE)
    else()
        # Once every run is finished, a program with CARRY takes them from its CSVs.
        set(want_line "resuming from checkpoint|finished in an earlier sitting")
        if(pass STREQUAL "resumed")
            set(want_line "resuming from checkpoint")
        endif()
        set(CARRY_PASS FALSE)
    endif()
    run(split --resume)
    # Without checkpoints, no run may start again from step 0 (a +FT phase may, with them).
    if(NOT last_output MATCHES "${want_line}"
       OR (CARRY_PASS AND last_output MATCHES "starting from step 0"))
        message(FATAL_ERROR "the ${pass} run did not go on from where it was:\n${last_output}")
    endif()
    foreach(csv IN LISTS CSVS)
        stable("${OUT_DIR}/straight/${csv}" want)
        stable("${OUT_DIR}/split/${csv}" got)
        if(NOT got STREQUAL want)
            message(FATAL_ERROR "${csv} after the ${pass} run differs from the uninterrupted "
                "run's (volatile columns left out).\n--- uninterrupted ---\n${want}\n"
                "--- interrupted, ${pass} ---\n${got}")
        endif()
    endforeach()
    message(STATUS "${pass}: ${CSVS} equal the uninterrupted run's")
endforeach()
