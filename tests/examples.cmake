# Smoke tests of the experiment programs (examples/mnist_imbalance.cpp, examples/noisy_labels.cpp):
# each runs end to end on a tiny configuration on Fashion-MNIST (the programs' default data) and
# tests/check_example_output.cmake checks what it printed and the CSV it wrote. A program that
# finds no Fashion-MNIST exits with status 77, which the checker turns into a skipped test.
#
# Included from tests/CMakeLists.txt:  include(${CMAKE_CURRENT_SOURCE_DIR}/examples.cmake)
# The example targets are defined later (examples/ is added after tests/), which is fine:
# $<TARGET_FILE:...> is resolved at generation time.

if(NOT L2RW_BUILD_EXAMPLES)
    return()
endif()
if(NOT EXISTS "${PROJECT_SOURCE_DIR}/examples/mnist_imbalance.cpp"
   OR NOT EXISTS "${PROJECT_SOURCE_DIR}/examples/noisy_labels.cpp")
    return()
endif()

set(L2RW_EXAMPLE_CHECKER "${CMAKE_CURRENT_SOURCE_DIR}/check_example_output.cmake")
set(L2RW_EXAMPLE_OUT "${CMAKE_CURRENT_BINARY_DIR}/examples_out")
# mnist_imbalance's methods when --methods is not given (its default, in the program's order).
set(L2RW_MNIST_METHODS uniform proportion resample hard_mining random l2rw)

# l2rw_example_test(NAME <test> TARGET <example> KIND <mnist_imbalance|noisy_labels>
#                   METHODS <m>... ROWS <n> ARGS <arg>... [RESUME_ARGS <arg>...] [RESUME_STEP <k>]
#                   [BAD_CHECKPOINT])
# ARGS and RESUME_ARGS travel to the checker joined by '|' (CMake lists would split them).
function(l2rw_example_test)
    cmake_parse_arguments(PARSE_ARGV 0 E "BAD_CHECKPOINT" "NAME;TARGET;KIND;ROWS;RESUME_STEP"
        "METHODS;ARGS;RESUME_ARGS")
    string(JOIN "|" args ${E_ARGS})
    string(JOIN "|" resume_args ${E_RESUME_ARGS})
    string(JOIN "|" methods ${E_METHODS})
    add_test(NAME ${E_NAME}
        COMMAND "${CMAKE_COMMAND}"
            "-DPROGRAM=$<TARGET_FILE:${E_TARGET}>"
            "-DKIND=${E_KIND}"
            "-DOUT_DIR=${L2RW_EXAMPLE_OUT}/${E_NAME}"
            "-DARGS=${args}"
            "-DRESUME_ARGS=${resume_args}"
            "-DRESUME_STEP=${E_RESUME_STEP}"
            "-DBAD_CHECKPOINT=${E_BAD_CHECKPOINT}"
            "-DMETHODS=${methods}"
            "-DROWS=${E_ROWS}"
            -P "${L2RW_EXAMPLE_CHECKER}")
    set_tests_properties(${E_NAME} PROPERTIES
        LABELS "examples"
        TIMEOUT 600
        SKIP_REGULAR_EXPRESSION "L2RW_EXAMPLE_SKIPPED")
endfunction()

# §4.1: six methods × two proportions × two seeds = 24 runs of 10 steps (batch 50, so that the
# whole test stays in seconds).
l2rw_example_test(NAME examples.mnist_imbalance TARGET mnist_imbalance KIND mnist_imbalance
    METHODS ${L2RW_MNIST_METHODS}
    ROWS 24
    ARGS --train-size 300 --steps 10 --batch 50 --seeds 2 --proportions 0.9,0.98
         --methods uniform,proportion,resample,hard_mining,random,l2rw --eval-every 5)

# Checkpoints and --resume: 10 steps with a checkpoint every 5, then on to 15 steps with
# --resume, which must say it resumes from step 10 and run the last 5 steps only; then, with
# one checkpoint emptied or overwritten, --resume must fail naming it.
l2rw_example_test(NAME examples.mnist_imbalance.resume TARGET mnist_imbalance
    KIND mnist_imbalance
    METHODS uniform l2rw
    ROWS 2
    ARGS --train-size 300 --steps 10 --batch 50 --seeds 1 --proportions 0.95
         --methods uniform,l2rw --eval-every 5 --checkpoint-every 5
    RESUME_ARGS --train-size 300 --steps 15 --batch 50 --seeds 1 --proportions 0.95
         --methods uniform,l2rw --eval-every 5 --checkpoint-every 5 --resume
    RESUME_STEP 10
    BAD_CHECKPOINT)

# §4.2: every method and a +FT variant, LeNet, 5,000 training images, 1,000 test images.
l2rw_example_test(NAME examples.noisy_labels TARGET noisy_labels KIND noisy_labels
    METHODS uniform random reed_soft reed_hard l2rw uniform+ft
    ROWS 6
    ARGS --model lenet --lr 0.01 --steps 20 --ft-steps 5 --train-size 5000 --test-size 1000
         --methods uniform,random,reed_soft,reed_hard,l2rw,uniform+ft --eval-every 10)

l2rw_example_test(NAME examples.noisy_labels.background TARGET noisy_labels KIND noisy_labels
    METHODS uniform l2rw
    ROWS 2
    ARGS --model lenet --lr 0.01 --noise background --steps 10 --train-size 3000
         --test-size 500 --methods uniform,l2rw --eval-every 0)

l2rw_example_test(NAME examples.noisy_labels.resume TARGET noisy_labels KIND noisy_labels
    METHODS uniform l2rw uniform+ft
    ROWS 3
    ARGS --model lenet --lr 0.01 --steps 10 --ft-steps 4 --train-size 3000 --test-size 500
         --methods uniform,l2rw,uniform+ft --eval-every 5 --checkpoint-every 5
    RESUME_ARGS --model lenet --lr 0.01 --steps 15 --ft-steps 4 --train-size 3000
         --test-size 500 --methods uniform,l2rw,uniform+ft --eval-every 5 --checkpoint-every 5
         --resume
    RESUME_STEP 10
    BAD_CHECKPOINT)

# The README's first command: the ```sh block between <!-- quickstart:begin --> and
# <!-- quickstart:end --> ends in `build/default/examples/mnist_imbalance <args>`; this test runs
# the program with exactly those arguments (on the default data, Fashion-MNIST) and checks its
# table and CSV, so the command a new user runs first is the one CI runs. The arguments must
# name --seeds and --proportions (the row count is computed from them) and must not name --out.
# L2RW_README_TEXT is README.md as tests/CMakeLists.txt read it for the readme.snippet test (which also
# re-runs the configuration when README.md changes).
string(REGEX MATCH "<!-- quickstart:begin -->.*<!-- quickstart:end -->" l2rw_quickstart
    "${L2RW_README_TEXT}")
string(REGEX MATCH "examples/mnist_imbalance([^\n`]*)" l2rw_quickstart_cmd "${l2rw_quickstart}")
if(NOT l2rw_quickstart OR NOT l2rw_quickstart_cmd)
    message(FATAL_ERROR "l2rw: README.md must hold a command running examples/mnist_imbalance "
        "between <!-- quickstart:begin --> and <!-- quickstart:end --> (the readme.quickstart test)")
endif()
separate_arguments(l2rw_qs_args UNIX_COMMAND "${CMAKE_MATCH_1}")
set(l2rw_qs_methods ${L2RW_MNIST_METHODS})
set(l2rw_qs_seeds "")
set(l2rw_qs_props "")
list(LENGTH l2rw_qs_args l2rw_qs_n)
set(l2rw_qs_i 0)
while(l2rw_qs_i LESS l2rw_qs_n)
    list(GET l2rw_qs_args ${l2rw_qs_i} l2rw_qs_flag)
    math(EXPR l2rw_qs_next "${l2rw_qs_i} + 1")
    if(l2rw_qs_flag STREQUAL "--out")
        message(FATAL_ERROR "l2rw: the README's mnist_imbalance command must not set --out")
    endif()
    if(l2rw_qs_next LESS l2rw_qs_n)
        list(GET l2rw_qs_args ${l2rw_qs_next} l2rw_qs_value)
        if(l2rw_qs_flag STREQUAL "--seeds")
            set(l2rw_qs_seeds "${l2rw_qs_value}")
        elseif(l2rw_qs_flag STREQUAL "--proportions")
            string(REPLACE "," ";" l2rw_qs_props "${l2rw_qs_value}")
        elseif(l2rw_qs_flag STREQUAL "--methods")
            string(REPLACE "," ";" l2rw_qs_methods "${l2rw_qs_value}")
        endif()
    endif()
    set(l2rw_qs_i ${l2rw_qs_next})
endwhile()
if(NOT l2rw_qs_seeds MATCHES "^[1-9][0-9]*$" OR NOT l2rw_qs_props)
    message(FATAL_ERROR "l2rw: the README's mnist_imbalance command must set --seeds and "
        "--proportions (got: ${l2rw_qs_args})")
endif()
list(LENGTH l2rw_qs_methods l2rw_qs_n_methods)
list(LENGTH l2rw_qs_props l2rw_qs_n_props)
math(EXPR l2rw_qs_rows "${l2rw_qs_n_methods} * ${l2rw_qs_n_props} * ${l2rw_qs_seeds}")
l2rw_example_test(NAME readme.quickstart TARGET mnist_imbalance KIND mnist_imbalance
    METHODS ${l2rw_qs_methods}
    ROWS ${l2rw_qs_rows}
    ARGS ${l2rw_qs_args})
set_tests_properties(readme.quickstart PROPERTIES LABELS "examples;readme" TIMEOUT 1500)
