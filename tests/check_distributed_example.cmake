# Runs examples/distributed under mpiexec on 2 ranks and checks what it printed. Called by the
# test examples.distributed as
#
#   cmake -DMPIEXEC=<mpiexec> -DPROGRAM=<exe> -P check_distributed_example.cmake
#
# Checks: a tiny run exits 0 and rank 0 alone prints (the header, each evaluation and each
# method's result once, not once per rank); the same run as one process (no mpiexec) prints
# the same final accuracies, to the printed two decimals; a bad flag fails with its message
# on stderr once; a data folder that cannot be read stops both ranks (no hang: the test has a
# timeout) with one message naming the failed rank.
cmake_minimum_required(VERSION 3.25)

set(tiny --steps 20 --eval-every 10 --train-size 600 --clean 50 --batch 50 --test-size 400)

function(run out_var err_var rc_var)
    execute_process(COMMAND ${ARGN} OUTPUT_VARIABLE out ERROR_VARIABLE err RESULT_VARIABLE rc
        TIMEOUT 300)
    set(${out_var} "${out}" PARENT_SCOPE)
    set(${err_var} "${err}" PARENT_SCOPE)
    set(${rc_var} "${rc}" PARENT_SCOPE)
endfunction()

function(count text pattern var)
    string(REGEX MATCHALL "${pattern}" hits "${text}")
    list(LENGTH hits n)
    set(${var} ${n} PARENT_SCOPE)
endfunction()

function(final_accuracies text var)
    string(REGEX MATCHALL "(uniform|l2rw) +test accuracy [0-9.]+%" hits "${text}")
    set(${var} "${hits}" PARENT_SCOPE)
endfunction()

# 1. Two ranks: one header, two evaluations and one result per method.
run(out err rc "${MPIEXEC}" -n 2 "${PROGRAM}" ${tiny})
if(NOT rc EQUAL 0)
    message(FATAL_ERROR "distributed on 2 ranks failed (${rc}):\n${out}\n${err}")
endif()
count("${out}" "Fashion-MNIST: " headers)
count("${out}" "step +[0-9]+: test accuracy" evals)
final_accuracies("${out}" two)
list(LENGTH two results)
if(NOT headers EQUAL 1 OR NOT evals EQUAL 4 OR NOT results EQUAL 2)
    message(FATAL_ERROR "want 1 header, 4 evaluations and 2 results (rank 0 alone printing), got "
        "${headers}, ${evals} and ${results}:\n${out}")
endif()
if(NOT out MATCHES "over 2 ranks")
    message(FATAL_ERROR "the header does not say 2 ranks:\n${out}")
endif()

# 2. One process on the whole batch: the same accuracies.
run(out1 err1 rc1 "${PROGRAM}" ${tiny})
if(NOT rc1 EQUAL 0)
    message(FATAL_ERROR "distributed as one process failed (${rc1}):\n${out1}\n${err1}")
endif()
final_accuracies("${out1}" one)
if(NOT one STREQUAL two)
    message(FATAL_ERROR "2 ranks and 1 process differ:\n  2 ranks:   ${two}\n  1 process: ${one}")
endif()

# 3. A bad flag: a non-zero exit and its message once.
run(out err rc "${MPIEXEC}" -n 2 "${PROGRAM}" --noise 2)
count("${err}" "--noise: must be" said)
if(rc EQUAL 0 OR NOT said EQUAL 1 OR NOT out STREQUAL "")
    message(FATAL_ERROR "--noise 2: want a failure and its message once on stderr, got status "
        "${rc}, ${said} messages:\n${out}\n${err}")
endif()

# 4. A data folder that cannot be read: every rank stops, rank 0 says which rank failed.
run(out err rc "${MPIEXEC}" -n 2 "${PROGRAM}" ${tiny} --data /nonexistent/fashion-mnist)
count("${err}" "distributed: rank 0 of 2 failed" said)
if(rc EQUAL 0 OR NOT said EQUAL 1)
    message(FATAL_ERROR "--data /nonexistent: want a failure naming rank 0 once, got status ${rc}:"
        "\n${out}\n${err}")
endif()
message(STATUS "examples.distributed: 2 ranks = 1 process: ${two}")
