# Runs one experiment program (examples/mnist_imbalance or examples/noisy_labels) and checks its
# output. Called by the tests of tests/examples.cmake as
#
#   cmake -DPROGRAM=<exe> -DKIND=mnist_imbalance|noisy_labels -DOUT_DIR=<dir>
#         -DARGS=<a|b|...> [-DRESUME_ARGS=<a|b|...> -DRESUME_STEP=<k>]
#         -DMETHODS=<m1|m2|...> -DROWS=<n> [-DCOLUMN=<name> -DVALUES=<v1|v2|...>]
#         [-DFIGURES=<figure5|...>] [-DWEIGHT_FILE=<name> -DWEIGHT_ROWS=<n>]
#         [-DWANT_OUTPUT=<regex>] -P check_example_output.cmake
#
# Checks: the program exits 0; its summary table has a row per method; OUT_DIR/results.csv has
# the header plus ROWS rows, every one with as many fields as the header, a known method and a
# test error / accuracy in [0, 1]; mnist_imbalance also reports Figure 2 (drawn or gnuplot
# missing), writes evals.csv with at least one evaluation, and its figure2.gp redraws
# figure2.png when run by itself in OUT_DIR (with gnuplot installed). With RESUME_ARGS the program is run a second time with them:
# it must say it resumes from step RESUME_STEP, and every CSV row must record it; with
# RESUME_STEP "taken" (every run finished) it must take every result from results.csv
# instead, training none again, and write results.csv back with the same text. With
# BAD_CHECKPOINT=ON as well, one checkpoint is then replaced by an empty file and by a text
# file in turn: each --resume run must fail, naming the file and what is wrong with it, and
# must not have said "no checkpoint" for it.
# Optional checks: with COLUMN and VALUES, results.csv's column COLUMN holds each of VALUES
# in ROWS / (number of VALUES) rows and nothing else. After the last run (the --resume one,
# if any): each of FIGURES (figure5 -> "Figure 5") is reported drawn or not drawn, its script
# is in OUT_DIR and redraws its PNG by itself (with gnuplot installed); OUT_DIR/WEIGHT_FILE (a
# weight dump: step,example,flipped,weight) has WEIGHT_ROWS rows, weights >= 0 and both
# flipped values 0 and 1, and the output reports its zero weights; the output matches
# WANT_OUTPUT.
# Exit status 77 (no Fashion-MNIST) prints L2RW_EXAMPLE_SKIPPED, which marks the test skipped.

cmake_minimum_required(VERSION 3.25)

foreach(var PROGRAM KIND OUT_DIR ARGS METHODS ROWS)
    if(NOT DEFINED ${var} OR "${${var}}" STREQUAL "")
        message(FATAL_ERROR "check_example_output: -D${var}=... is required")
    endif()
endforeach()
string(REPLACE "|" ";" ARGS "${ARGS}")
string(REPLACE "|" ";" METHODS "${METHODS}")
if(DEFINED RESUME_ARGS AND NOT "${RESUME_ARGS}" STREQUAL "")
    string(REPLACE "|" ";" RESUME_ARGS "${RESUME_ARGS}")
else()
    set(RESUME_ARGS "")
endif()

file(REMOVE_RECURSE "${OUT_DIR}")
file(MAKE_DIRECTORY "${OUT_DIR}")

# Runs the program with the given arguments (plus --out), saves its output in OUT_DIR/<tag>.txt
# and leaves it in `out_var`; stops the test on failure and marks it skipped on status 77.
function(run_program tag out_var)
    execute_process(
        COMMAND "${PROGRAM}" ${ARGN} --out "${OUT_DIR}"
        OUTPUT_VARIABLE out
        ERROR_VARIABLE err
        RESULT_VARIABLE rc)
    file(WRITE "${OUT_DIR}/${tag}.txt" "${out}")
    if(rc EQUAL 77)
        message("${out}")
        message("L2RW_EXAMPLE_SKIPPED: ${PROGRAM} found no data (exit status 77)")
        set(${out_var} "" PARENT_SCOPE)
        set(skipped TRUE PARENT_SCOPE)
        return()
    endif()
    if(NOT rc EQUAL 0)
        string(JOIN " " cmd ${ARGN})
        message(FATAL_ERROR "${PROGRAM} ${cmd} failed (${rc}).\n"
            "--- stdout ---\n${out}\n--- stderr ---\n${err}")
    endif()
    set(${out_var} "${out}" PARENT_SCOPE)
    set(skipped FALSE PARENT_SCOPE)
endfunction()

function(fail what output)
    message(FATAL_ERROR "${KIND}: ${what}\n--- program output ---\n${output}")
endfunction()

# Reads OUT_DIR/results.csv, checks it and returns the column `column` of every row.
function(check_csv output column out_var)
    set(csv "${OUT_DIR}/results.csv")
    if(NOT EXISTS "${csv}")
        fail("${csv} was not written" "${output}")
    endif()
    file(READ "${csv}" text)
    string(REPLACE ";" "," text "${text}") # ';' inside fields would split CMake lists
    string(REGEX REPLACE "\n$" "" text "${text}")
    string(REPLACE "\n" ";" lines "${text}")
    list(LENGTH lines n_lines)
    math(EXPR n_rows "${n_lines} - 1")
    if(NOT n_rows EQUAL ROWS)
        fail("${csv} has ${n_rows} data rows, want ${ROWS}:\n${text}" "${output}")
    endif()
    list(GET lines 0 header)
    string(REPLACE "," ";" header "${header}")
    list(LENGTH header n_fields)
    list(FIND header method i_method)
    if(KIND STREQUAL "mnist_imbalance")
        list(FIND header test_error i_score)
        list(FIND header zero_weight_at_evals i_evals)
    else()
        list(FIND header test_accuracy i_score)
    endif()
    list(FIND header "${column}" i_column)
    if(i_method LESS 0 OR i_score LESS 0 OR i_column LESS 0)
        fail("${csv}: header lacks method, the test score or ${column}: ${header}" "${output}")
    endif()
    set(values "")
    list(SUBLIST lines 1 -1 rows)
    foreach(row IN LISTS rows)
        string(REPLACE "," ";" fields "${row}")
        list(LENGTH fields n)
        if(KIND STREQUAL "mnist_imbalance")
            # zero_weight_at_evals ("5:12;10:40") was turned into commas above: fold it back.
            math(EXPR last "${n_fields} - 1")
            if(n GREATER n_fields AND i_evals EQUAL last)
                set(n ${n_fields})
            endif()
        endif()
        if(NOT n EQUAL n_fields)
            fail("${csv}: row '${row}' has ${n} fields, the header ${n_fields}" "${output}")
        endif()
        list(GET fields ${i_method} m)
        if(NOT m IN_LIST METHODS)
            fail("${csv}: row '${row}' names method '${m}', not one of ${METHODS}" "${output}")
        endif()
        list(GET fields ${i_score} score)
        if(NOT score MATCHES "^(0(\\.[0-9]+)?|1(\\.0+)?)$")
            fail("${csv}: row '${row}': test score '${score}' is not in [0, 1]" "${output}")
        endif()
        list(GET fields ${i_column} v)
        list(APPEND values "${v}")
    endforeach()
    set(${out_var} "${values}" PARENT_SCOPE)
endfunction()

# The summary table: a header line, a rule of dashes, then one row per method.
function(check_table output)
    if(NOT output MATCHES "\n-----+\n")
        fail("no summary table in the output" "${output}")
    endif()
    foreach(m IN LISTS METHODS)
        string(REPLACE "+" "\\+" re "${m}")
        if(NOT output MATCHES "\n${re} +[0-9]")
            fail("the summary table has no row for method '${m}'" "${output}")
        endif()
    endforeach()
    if(KIND STREQUAL "mnist_imbalance")
        check_figure_standalone("${output}" figure2)
        if(NOT EXISTS "${OUT_DIR}/evals.csv")
            fail("${OUT_DIR}/evals.csv was not written" "${output}")
        endif()
        file(STRINGS "${OUT_DIR}/evals.csv" eval_lines)
        list(LENGTH eval_lines n_eval_lines)
        if(n_eval_lines LESS 2)
            fail("${OUT_DIR}/evals.csv holds no evaluation (every run evaluates after its last "
                "step)" "${output}")
        endif()
    endif()
endfunction()

# A figure ("figure2") is reported, its script is there, and the script redraws the PNG by
# itself from its own folder (when gnuplot is there).
function(check_figure_standalone output name)
    string(REGEX REPLACE "^figure" "Figure " label "${name}")
    if(NOT output MATCHES "${label}[^\n]* (written to|not drawn)")
        fail("no word on ${label} in the output" "${output}")
    endif()
    if(NOT EXISTS "${OUT_DIR}/${name}.gp")
        fail("${OUT_DIR}/${name}.gp was not written" "${output}")
    endif()
    find_program(GNUPLOT gnuplot)
    if(NOT GNUPLOT)
        message(STATUS "${KIND}: gnuplot not installed, ${label}'s script not run by itself")
        return()
    endif()
    if(NOT output MATCHES "${label}[^\n]* written to")
        fail("gnuplot is installed but ${label} was not drawn" "${output}")
    endif()
    file(REMOVE "${OUT_DIR}/${name}.png")
    execute_process(COMMAND "${GNUPLOT}" ${name}.gp WORKING_DIRECTORY "${OUT_DIR}"
        RESULT_VARIABLE rc ERROR_VARIABLE err)
    if(NOT rc EQUAL 0 OR NOT EXISTS "${OUT_DIR}/${name}.png")
        fail("cd ${OUT_DIR} && gnuplot ${name}.gp did not draw ${name}.png (${rc}): ${err}"
            "${output}")
    endif()
    file(READ "${OUT_DIR}/${name}.png" magic LIMIT 4 HEX)
    if(NOT magic STREQUAL "89504e47")
        fail("${name}.png redrawn by its script is not a PNG (starts ${magic})" "${output}")
    endif()
    message(STATUS "${KIND}: ${name}.gp redraws ${name}.png by itself")
endfunction()

# A weight dump: the header, WEIGHT_ROWS rows of step,example,flipped (0/1),weight (>= 0),
# both flipped values present, and the zero-weight line in the output.
function(check_weight_dump output)
    set(csv "${OUT_DIR}/${WEIGHT_FILE}")
    if(NOT EXISTS "${csv}")
        fail("the weight dump ${csv} was not written" "${output}")
    endif()
    file(STRINGS "${csv}" lines)
    list(POP_FRONT lines header)
    if(NOT header STREQUAL "step,example,flipped,weight")
        fail("${csv}: header '${header}', want step,example,flipped,weight" "${output}")
    endif()
    list(LENGTH lines n)
    if(NOT n EQUAL WEIGHT_ROWS)
        fail("${csv} has ${n} rows, want ${WEIGHT_ROWS}" "${output}")
    endif()
    set(flags "")
    foreach(row IN LISTS lines)
        if(NOT row MATCHES "^[0-9]+,[0-9]+,([01]),[0-9.]+(e[-+][0-9]+)?$")
            fail("${csv}: row '${row}' is not step,example,flipped (0/1),weight (>= 0)"
                "${output}")
        endif()
        list(APPEND flags ${CMAKE_MATCH_1})
    endforeach()
    if(NOT "0" IN_LIST flags OR NOT "1" IN_LIST flags)
        fail("${csv}: the flipped column does not hold both 0 and 1" "${output}")
    endif()
    if(NOT output MATCHES "[0-9]+ got weight exactly 0; flipped among them [0-9.]+% \\(precision")
        fail("the output does not report the zero weights of the dump" "${output}")
    endif()
    message(STATUS "${KIND}: ${WEIGHT_FILE} has ${n} rows with clean and flipped examples")
endfunction()

run_program(first output ${ARGS})
if(skipped)
    return()
endif()
check_table("${output}")
check_csv("${output}" method methods)
message(STATUS "${KIND}: ${ROWS} result rows, a table row per method (${METHODS})")
if(KIND STREQUAL "mnist_imbalance")
    check_figure_standalone("${output}" figure2)
endif()
if(DEFINED COLUMN AND NOT "${COLUMN}" STREQUAL "")
    string(REPLACE "|" ";" VALUES "${VALUES}")
    check_csv("${output}" "${COLUMN}" got)
    list(LENGTH VALUES n_values)
    math(EXPR each "${ROWS} / ${n_values}")
    foreach(v IN LISTS VALUES)
        set(k 0)
        foreach(g IN LISTS got)
            if(g STREQUAL v)
                math(EXPR k "${k} + 1")
            endif()
        endforeach()
        if(NOT k EQUAL each)
            fail("results.csv: ${k} rows with ${COLUMN} ${v}, want ${each} (column: ${got})"
                "${output}")
        endif()
    endforeach()
    foreach(g IN LISTS got)
        if(NOT g IN_LIST VALUES)
            fail("results.csv: a row with ${COLUMN} '${g}', not one of ${VALUES}" "${output}")
        endif()
    endforeach()
    message(STATUS "${KIND}: results.csv's ${COLUMN} holds ${VALUES}, ${each} rows each")
endif()

if(RESUME_ARGS)
    if(NOT EXISTS "${OUT_DIR}")
        message(FATAL_ERROR "no output directory after the first run")
    endif()
    file(GLOB checkpoints "${OUT_DIR}/*.l2ck")
    if(NOT checkpoints)
        fail("the first run (with --checkpoint-every) left no checkpoint in ${OUT_DIR}"
            "${output}")
    endif()
    check_csv("${output}" test_loss losses_before)
    file(READ "${OUT_DIR}/results.csv" csv_before)
    run_program(resumed output ${RESUME_ARGS})
    check_table("${output}")
    if(RESUME_STEP STREQUAL "taken")
        # Every run had finished: each result is taken from results.csv, none trained again.
        string(REGEX MATCHALL "finished in an earlier sitting" taken "${output}")
        list(LENGTH taken n_taken)
        if(NOT n_taken EQUAL ROWS OR output MATCHES "resuming from checkpoint|starting from step")
            fail("the --resume run of finished runs did not take all ${ROWS} results from "
                "results.csv (${n_taken} taken)" "${output}")
        endif()
        check_csv("${output}" test_loss losses_after)
        if(NOT losses_after STREQUAL losses_before)
            fail("results.csv's losses changed: ${losses_before} before, ${losses_after} after"
                "${output}")
        endif()
        # Taken rows are written back as they were read: the same text, to the last digit.
        file(READ "${OUT_DIR}/results.csv" csv_after)
        if(NOT csv_after STREQUAL csv_before)
            fail("results.csv's text changed when its finished rows were written back:\n"
                "before:\n${csv_before}\nafter:\n${csv_after}" "${output}")
        endif()
        message(STATUS "${KIND}: --resume took every finished result from results.csv")
    else()
        if(NOT output MATCHES "resuming from checkpoint [^\n]*\\(step ${RESUME_STEP} of")
            fail("the --resume run does not say it resumes from step ${RESUME_STEP}" "${output}")
        endif()
        check_csv("${output}" resumed_from_step firsts)
        foreach(k IN LISTS firsts)
            if(NOT k EQUAL RESUME_STEP)
                fail("results.csv records a run resumed from step ${k}, want ${RESUME_STEP}"
                    "${output}")
            endif()
        endforeach()
        message(STATUS "${KIND}: --resume continued every run from step ${RESUME_STEP}")
    endif()
endif()

if(RESUME_ARGS AND BAD_CHECKPOINT)
    file(GLOB checkpoints "${OUT_DIR}/*.l2ck")
    list(SORT checkpoints)
    list(GET checkpoints 0 bad)
    get_filename_component(bad_name "${bad}" NAME)
    string(REGEX REPLACE "([.+])" "\\\\\\1" bad_re "${bad_name}")
    foreach(kind IN ITEMS empty text)
        if(kind STREQUAL "empty")
            file(WRITE "${bad}" "")
            set(want "${bad_re}: truncated at byte 0 while reading the magic bytes")
        else()
            file(WRITE "${bad}" "not a checkpoint\n")
            set(want "${bad_re}: not an l2rw checkpoint \\(bad magic\\)")
        endif()
        execute_process(
            COMMAND "${PROGRAM}" ${RESUME_ARGS} --out "${OUT_DIR}"
            OUTPUT_VARIABLE out
            ERROR_VARIABLE err
            RESULT_VARIABLE rc)
        if(rc EQUAL 0)
            fail("--resume with an ${kind} ${bad_name} succeeded" "${out}")
        endif()
        if(NOT err MATCHES "${want}")
            fail("--resume with an ${kind} ${bad_name}: stderr does not say '${want}':\n${err}"
                "${out}")
        endif()
        if(out MATCHES "no checkpoint at [^\n]*${bad_re}")
            fail("--resume with an ${kind} ${bad_name} said there was no checkpoint" "${out}")
        endif()
    endforeach()
    message(STATUS "${KIND}: --resume stops at an empty or foreign checkpoint file")
endif()

# The checks of what the last run left (the first run's output, or the --resume run's).
string(REPLACE "|" ";" FIGURES "${FIGURES}")
foreach(fig IN LISTS FIGURES)
    check_figure_standalone("${output}" ${fig})
endforeach()
if(DEFINED WEIGHT_FILE AND NOT "${WEIGHT_FILE}" STREQUAL "")
    check_weight_dump("${output}")
endif()
if(DEFINED WANT_OUTPUT AND NOT "${WANT_OUTPUT}" STREQUAL "" AND NOT output MATCHES "${WANT_OUTPUT}")
    fail("the output does not match '${WANT_OUTPUT}'" "${output}")
endif()
