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
#                   METHODS <m>... ROWS <n> ARGS <arg>... [RESUME_ARGS <arg>...]
#                   [RESUME_STEP <k>|taken]
#                   [BAD_CHECKPOINT] [COLUMN <name> VALUES <v>...] [FIGURES <figureN>...]
#                   [WEIGHT_FILE <file> WEIGHT_ROWS <n>] [WANT_OUTPUT <regex>])
# ARGS, RESUME_ARGS, VALUES and FIGURES travel to the checker joined by '|' (CMake lists
# would split them). What the optional checks do: tests/check_example_output.cmake.
function(l2rw_example_test)
    cmake_parse_arguments(PARSE_ARGV 0 E "BAD_CHECKPOINT"
        "NAME;TARGET;KIND;ROWS;RESUME_STEP;COLUMN;WEIGHT_FILE;WEIGHT_ROWS;WANT_OUTPUT"
        "METHODS;ARGS;RESUME_ARGS;VALUES;FIGURES")
    string(JOIN "|" args ${E_ARGS})
    string(JOIN "|" resume_args ${E_RESUME_ARGS})
    string(JOIN "|" methods ${E_METHODS})
    string(JOIN "|" values ${E_VALUES})
    string(JOIN "|" figures ${E_FIGURES})
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
            "-DCOLUMN=${E_COLUMN}"
            "-DVALUES=${values}"
            "-DFIGURES=${figures}"
            "-DWEIGHT_FILE=${E_WEIGHT_FILE}"
            "-DWEIGHT_ROWS=${E_WEIGHT_ROWS}"
            "-DWANT_OUTPUT=${E_WANT_OUTPUT}"
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

# §4.3, Figure 5: two noise ratios, every method at each; a row per method and ratio, and
# figure5.gp that redraws figure5.png by itself.
l2rw_example_test(NAME examples.noisy_labels.ratios TARGET noisy_labels KIND noisy_labels
    METHODS uniform l2rw
    ROWS 4
    COLUMN ratio VALUES 0 0.4
    FIGURES figure5
    ARGS --model lenet --lr 0.01 --steps 10 --train-size 2000 --test-size 300 --ratio 0,0.4
         --methods uniform,l2rw --eval-every 0)

# §4.3, Figure 3: l2rw's weights of 3 batches of 50 from step 5, in a run stopped at step 4
# (--session-steps) and resumed: the resumed part runs the dump's steps, so the dump has all
# 150 rows; uniform gives no per-example weights and dumps nothing.
set(nl_dump --model lenet --lr 0.01 --steps 10 --batch 50 --train-size 2000 --test-size 300
    --methods uniform,l2rw --eval-every 0 --checkpoint-every 2 --weight-dump-step 5
    --weight-dump-batches 3)
l2rw_example_test(NAME examples.noisy_labels.weight_dump TARGET noisy_labels KIND noisy_labels
    METHODS uniform l2rw
    ROWS 2
    ARGS ${nl_dump} --session-steps 4
    RESUME_ARGS ${nl_dump} --resume
    RESUME_STEP 4
    FIGURES figure3
    WEIGHT_FILE weights_l2rw_0.4_seed1.csv WEIGHT_ROWS 150)

# A run resumed inside the dump's steps (here at 6 of 5..8) keeps the rows of the steps before
# its resume point from the earlier sitting's file, and says so: 4 batches of 50 in all.
set(nl_dump_mid --model lenet --lr 0.01 --steps 10 --batch 50 --train-size 2000
    --test-size 300 --methods l2rw --eval-every 0 --checkpoint-every 2 --weight-dump-step 5
    --weight-dump-batches 4)
l2rw_example_test(NAME examples.noisy_labels.weight_dump_resumed TARGET noisy_labels
    KIND noisy_labels
    METHODS l2rw
    ROWS 1
    ARGS ${nl_dump_mid} --session-steps 6
    RESUME_ARGS ${nl_dump_mid} --resume
    RESUME_STEP 6
    WEIGHT_FILE weights_l2rw_0.4_seed1.csv WEIGHT_ROWS 200
    WANT_OUTPUT "resumes at step 6, after --weight-dump-step 5. kept from the earlier sitting's .*weights_l2rw_0\\.4_seed1\\.csv: 50 rows \\(step 5\\). dumping steps 6\\.\\.8 to")

# noisy_labels's schedule scales with --steps, so a run resumes only with the --steps it was
# made with: here every run is finished, so every result is taken from results.csv (the
# stopped-and-resumed case is examples.noisy_labels.resume_equivalence below); a damaged
# checkpoint is still refused before that.
l2rw_example_test(NAME examples.noisy_labels.resume TARGET noisy_labels KIND noisy_labels
    METHODS uniform l2rw uniform+ft
    ROWS 3
    ARGS --model lenet --lr 0.01 --steps 10 --ft-steps 4 --train-size 3000 --test-size 500
         --methods uniform,l2rw,uniform+ft --eval-every 5 --checkpoint-every 5
    RESUME_ARGS --model lenet --lr 0.01 --steps 10 --ft-steps 4 --train-size 3000
         --test-size 500 --methods uniform,l2rw,uniform+ft --eval-every 5 --checkpoint-every 5
         --resume
    RESUME_STEP taken
    BAD_CHECKPOINT)

# A run stopped by --session-steps and resumed reports what the uninterrupted one does
# (tests/check_resume_equivalence.cmake): the CSVs equal but for timing and how it ran.
# With CARRY, the run must go on from its CSVs alone once its checkpoints are deleted.
function(l2rw_resume_equivalence_test name target session csvs)
    cmake_parse_arguments(PARSE_ARGV 4 R "CARRY" "" "")
    string(JOIN "|" args ${R_UNPARSED_ARGUMENTS})
    string(JOIN "|" csv_list ${csvs})
    add_test(NAME ${name}
        COMMAND "${CMAKE_COMMAND}" "-DPROGRAM=$<TARGET_FILE:${target}>" "-DARGS=${args}"
            "-DSESSION=${session}" "-DCSVS=${csv_list}" "-DOUT_DIR=${L2RW_EXAMPLE_OUT}/${name}"
            "-DCARRY=${R_CARRY}"
            -P "${CMAKE_CURRENT_SOURCE_DIR}/check_resume_equivalence.cmake")
    # One thread: oneDNN's float convolutions (l2rw::onednn) give other last bits at another
    # thread count, and on a busy machine the adaptive team would change it between runs.
    set_tests_properties(${name} PROPERTIES LABELS "examples" TIMEOUT 600
        SKIP_REGULAR_EXPRESSION "L2RW_EXAMPLE_SKIPPED" ENVIRONMENT "OMP_NUM_THREADS=1")
endfunction()
l2rw_resume_equivalence_test(examples.mnist_imbalance.resume_equivalence mnist_imbalance 10
    "results.csv;evals.csv" CARRY
    --train-size 300 --steps 15 --batch 50 --seeds 1 --proportions 0.95
    --methods uniform,hard_mining,l2rw --eval-every 4 --checkpoint-every 5)
l2rw_resume_equivalence_test(examples.noisy_labels.resume_equivalence noisy_labels 7
    "results.csv" CARRY
    --model lenet --lr 0.01 --steps 12 --ft-steps 4 --train-size 3000 --test-size 500
    --methods uniform,l2rw,l2rw+ft --eval-every 5 --checkpoint-every 3)

# Bad flags, and a --resume of another run's checkpoint: the program exits non-zero with a
# message naming the problem in the user's words, and prints nothing to stdout first
# (tests/check_bad_flags.cmake).
function(l2rw_bad_flag_test name target want)
    cmake_parse_arguments(PARSE_ARGV 3 F "NO_OUT" "" "ARGS;SETUP")
    string(JOIN "|" args ${F_ARGS})
    string(JOIN "|" setup ${F_SETUP})
    add_test(NAME examples.bad_flags.${name}
        COMMAND "${CMAKE_COMMAND}" "-DPROGRAM=$<TARGET_FILE:${target}>" "-DARGS=${args}"
            "-DWANT=${want}" "-DSETUP_ARGS=${setup}" "-DNO_OUT=${F_NO_OUT}"
            "-DOUT_DIR=${L2RW_EXAMPLE_OUT}/bad_flags.${name}"
            -P "${CMAKE_CURRENT_SOURCE_DIR}/check_bad_flags.cmake")
    set_tests_properties(examples.bad_flags.${name} PROPERTIES LABELS "examples" TIMEOUT 300
        SKIP_REGULAR_EXPRESSION "L2RW_EXAMPLE_SKIPPED")
endfunction()
set(mi mnist_imbalance)
l2rw_bad_flag_test(mi.classes_range ${mi} "--classes: 10 is not a class of MNIST or Fashion-MNIST \\(0\\.\\.9\\)"
    ARGS --classes 4,10)
l2rw_bad_flag_test(mi.classes_same ${mi} "--classes wants two different classes, got 4 twice"
    ARGS --classes 4,4)
l2rw_bad_flag_test(mi.steps_zero ${mi} "--steps: must be at least 1, got 0" ARGS --steps 0)
l2rw_bad_flag_test(mi.seeds_zero ${mi} "--seeds: must be at least 1, got 0" ARGS --seeds 0)
l2rw_bad_flag_test(mi.clean_negative ${mi} "--clean: must be at least 2, got -3" ARGS --clean -3)
l2rw_bad_flag_test(mi.clean_odd ${mi} "--clean 3: the clean set is half minority, half majority"
    ARGS --clean 3)
l2rw_bad_flag_test(mi.proportion_minority ${mi}
    "--proportions: must be in \\(0.5, 1\\), got 0.1" ARGS --proportions 0.9,0.1)
l2rw_bad_flag_test(mi.proportion_half ${mi} "--proportions: must be in \\(0.5, 1\\), got 0.5"
    ARGS --proportions 0.5)
l2rw_bad_flag_test(mi.proportion_twice ${mi} "--proportions names 0.9 twice"
    ARGS --proportions 0.9,0.9)
l2rw_bad_flag_test(mi.batch_large ${mi}
    "--batch 10000 is larger than the 4990 training images of a run" ARGS --batch 10000)
l2rw_bad_flag_test(mi.train_size_small ${mi}
    "--train-size 500 at p=0.99 gives 5 minority images, and the clean set takes 5"
    ARGS --train-size 500)
l2rw_bad_flag_test(mi.train_size_data ${mi}
    "--train-size 20000 at p=0.9 needs 18000 images of class 6, but Fashion-MNIST has 6000"
    ARGS --train-size 20000)
l2rw_bad_flag_test(mi.method_unknown ${mi} "--methods: unknown method 'foo' \\(known: uniform, " ARGS --methods uniform,foo)
l2rw_bad_flag_test(mi.session_without_checkpoints ${mi} "--session-steps .* needs --checkpoint-every"
    ARGS --session-steps 5)
set(mi_small --train-size 300 --steps 10 --batch 50 --seeds 1 --proportions 0.95 --methods uniform
    --checkpoint-every 5)
l2rw_bad_flag_test(mi.resume_other_run ${mi}
    "saved by another run \\(classes is '4,9' there, '4,6' here; lr is '0.001' there, '0.1' here\\)"
    SETUP ${mi_small} --classes 4,9 --lr 0.001
    ARGS ${mi_small} --classes 4,6 --lr 0.1 --resume)
# No checkpoints, only the CSVs and sweep.txt of an earlier sitting: they are refused too.
l2rw_bad_flag_test(mi.resume_other_sweep ${mi}
    "the runs in .* were made with other settings \\(lr is '0.001' there, '0.1' here\\)"
    SETUP --train-size 300 --steps 10 --batch 50 --seeds 1 --proportions 0.95 --methods uniform
    ARGS --train-size 300 --steps 10 --batch 50 --seeds 1 --proportions 0.95 --methods uniform
         --lr 0.1 --resume)
l2rw_bad_flag_test(mi.resume_past_steps ${mi}
    "was saved after step 10, past the 5 steps of this run: its model is not a 5-step result"
    SETUP ${mi_small}
    ARGS --train-size 300 --steps 5 --batch 50 --seeds 1 --proportions 0.95 --methods uniform
         --checkpoint-every 5 --resume)
set(nl noisy_labels)
l2rw_bad_flag_test(nl.model ${nl} "--model: must be one of resnet32, wrn28-10, lenet, got 'vgg'"
    ARGS --model vgg)
l2rw_bad_flag_test(nl.train_size_clean ${nl}
    "--clean 1000 \\(the default for uniform noise\\) and --batch 100 need more than the 500 training images"
    ARGS --train-size 500)
l2rw_bad_flag_test(nl.train_size_data ${nl} "--train-size 70000: Fashion-MNIST has 60000 training images"
    ARGS --train-size 70000)
l2rw_bad_flag_test(nl.background_class ${nl}
    "--background-class 12 is not a class of the data \\(0\\.\\.9\\)"
    ARGS --noise background --background-class 12)
l2rw_bad_flag_test(nl.background_without_noise ${nl} "--background-class is for --noise background"
    ARGS --background-class 3)
l2rw_bad_flag_test(nl.clean_negative ${nl} "--clean: must be at least 1, got -3" ARGS --clean -3)
l2rw_bad_flag_test(nl.steps_zero ${nl} "--steps: must be at least 1, got 0" ARGS --steps 0)
l2rw_bad_flag_test(nl.ratio ${nl} "--ratio: must be in \\[0, 1\\], got 1.5" ARGS --ratio 1.5)
# Tiny runs, so that a check that fails to stop them fails the test at once.
set(nl_tiny --model lenet --steps 10 --train-size 2000 --test-size 100 --methods uniform,l2rw)
l2rw_bad_flag_test(nl.ratio_twice ${nl} "--ratio names 0.2 twice"
    ARGS ${nl_tiny} --ratio 0.2,0.4,0.2)
l2rw_bad_flag_test(nl.ratio_list_range ${nl} "--ratio: must be in \\[0, 1\\], got -0.1"
    ARGS --ratio 0,-0.1)
l2rw_bad_flag_test(nl.weight_dump_past_steps ${nl}
    "--weight-dump-step 10 must be less than --steps 10" ARGS ${nl_tiny} --weight-dump-step 10)
l2rw_bad_flag_test(nl.weight_dump_batches_alone ${nl}
    "--weight-dump-batches is for --weight-dump-step" ARGS --weight-dump-batches 5)
l2rw_bad_flag_test(nl.weight_dump_no_method ${nl}
    "--weight-dump-step: none of --methods gives per-example weights"
    ARGS --steps 10 --weight-dump-step 5 --methods uniform,reed_soft)
l2rw_bad_flag_test(nl.lr_zero ${nl} "--lr: must be greater than 0, got 0" ARGS --lr 0)
l2rw_bad_flag_test(nl.dataset_without_data ${nl} "--dataset cifar100 needs --data DIR"
    ARGS --dataset cifar100)
l2rw_bad_flag_test(nl.methods_twice ${nl} "--methods names 'l2rw' twice" ARGS --methods l2rw,l2rw)
l2rw_bad_flag_test(nl.resume_other_run ${nl} "saved by another run \\(lr is '0.01' there, '0.02' here\\)"
    SETUP --model lenet --lr 0.01 --steps 4 --train-size 3000 --test-size 500 --methods uniform
          --checkpoint-every 2
    ARGS --model lenet --lr 0.02 --steps 4 --train-size 3000 --test-size 500 --methods uniform
         --checkpoint-every 2 --resume)
l2rw_bad_flag_test(nl.resume_longer ${nl} "saved by another run \\(steps is '4' there, '6' here\\)"
    SETUP --model lenet --lr 0.01 --steps 4 --train-size 3000 --test-size 500 --methods uniform
          --checkpoint-every 2
    ARGS --model lenet --lr 0.01 --steps 6 --train-size 3000 --test-size 500 --methods uniform
         --checkpoint-every 2 --resume)
if(EXISTS "${PROJECT_SOURCE_DIR}/examples/demo.cpp")
    l2rw_bad_flag_test(demo.lr_zero demo "--lr: must be greater than 0, got 0" NO_OUT ARGS --lr 0)
    l2rw_bad_flag_test(demo.noise demo "--noise: must be in \\[0, 0.9\\], got 0.95" NO_OUT
        ARGS --noise 0.95)
    add_test(NAME examples.demo.help COMMAND demo --help)
    set_tests_properties(examples.demo.help PROPERTIES LABELS "examples"
        PASS_REGULAR_EXPRESSION "--steps[^\n]*3000")
endif()

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

# examples/distributed under mpiexec on 2 ranks (tests/check_distributed_example.cmake), with
# the environment of the MPI tests (tests/CMakeLists.txt: one thread per rank; OpenMPI allowed
# to run as root and on more ranks than cores).
if(L2RW_HAS_MPI AND L2RW_MPI_TESTS AND L2RW_FASHION_MNIST_DIR)
    add_test(NAME examples.distributed
        COMMAND "${CMAKE_COMMAND}" "-DMPIEXEC=${MPIEXEC_EXECUTABLE}"
            "-DPROGRAM=$<TARGET_FILE:distributed>"
            -P "${CMAKE_CURRENT_SOURCE_DIR}/check_distributed_example.cmake")
    set_tests_properties(examples.distributed PROPERTIES
        ENVIRONMENT "${L2RW_MPI_TEST_ENV}" LABELS "examples;mpi" TIMEOUT 900 RUN_SERIAL TRUE)
endif()
