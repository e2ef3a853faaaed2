# The test readme.compile_line, run as `cmake -P`: the README's command line for users
# without CMake (the ```sh block between <!-- compile:begin --> and <!-- compile:end -->) is
# run as it is written, with `<prefix>/include` replaced by l2rw's include folder and
# `app.cpp` by the README snippet (readme_snippet.cpp); it must build the program and run it.
#
# Inputs (-D): README, INCLUDE_DIR, SOURCE, WORK_DIR.
cmake_minimum_required(VERSION 3.25)

foreach(var README INCLUDE_DIR SOURCE WORK_DIR)
    if(NOT DEFINED ${var} OR "${${var}}" STREQUAL "")
        message(FATAL_ERROR "check_readme_compile: ${var} is not set")
    endif()
endforeach()

file(READ "${README}" text)
string(REGEX MATCH "<!-- compile:begin -->.*<!-- compile:end -->" block "${text}")
string(REGEX MATCH "```sh[ \t]*\r?\n([^\r\n]+)\r?\n[ \t]*```" fence "${block}")
set(line "${CMAKE_MATCH_1}")
if(NOT block OR NOT fence)
    message(FATAL_ERROR "README.md must hold a one-line ```sh block between "
        "<!-- compile:begin --> and <!-- compile:end --> (the readme.compile_line test)")
endif()
foreach(placeholder "<prefix>/include" "app.cpp")
    string(FIND "${line}" "${placeholder}" pos)
    if(pos EQUAL -1)
        message(FATAL_ERROR "The README's compile line must name ${placeholder}: ${line}")
    endif()
endforeach()

string(REPLACE "<prefix>/include" "${INCLUDE_DIR}" command "${line}")
string(REPLACE "app.cpp" "${SOURCE}" command "${command}")
file(REMOVE_RECURSE "${WORK_DIR}")
file(MAKE_DIRECTORY "${WORK_DIR}")
message(STATUS "README: ${line}")
message(STATUS "runs:   ${command}")
execute_process(COMMAND sh -c "${command}"
    WORKING_DIRECTORY "${WORK_DIR}"
    RESULT_VARIABLE rc
    OUTPUT_VARIABLE out
    ERROR_VARIABLE out)
message("${out}")
if(NOT rc EQUAL 0)
    message(FATAL_ERROR "The README's compile line failed (${rc})")
endif()
# The snippet's first line of output: the program was built and it ran.
if(NOT out MATCHES "y' = [-0-9.]+, y'' = ")
    message(FATAL_ERROR "The README's compile line did not run the program it built")
endif()
