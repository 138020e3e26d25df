# Installs the built taep into a scratch prefix, checks the installed headers (only
# include/taep/*.hpp and include/taep/physics/*.hpp, each of which compiles on its own with plain
# C++17 flags: no -mavx, no private header, no third-party header), then builds examples/downstream
# against the prefix with find_package(taep) and runs it. Invoked by CTest (test
# downstream_find_package) with TAEP_BINARY_DIR, TAEP_SOURCE_DIR, WORK_DIR, GENERATOR, CXX_COMPILER.
cmake_minimum_required(VERSION 3.24)  # script mode: today's policies (IN_LIST)
file(REMOVE_RECURSE "${WORK_DIR}")
execute_process(COMMAND "${CMAKE_COMMAND}" --install "${TAEP_BINARY_DIR}" --prefix "${WORK_DIR}/prefix"
                RESULT_VARIABLE rc)
if(rc)
  message(FATAL_ERROR "install failed: ${rc}")
endif()

set(include_dir "${WORK_DIR}/prefix/include")
file(GLOB_RECURSE installed LIST_DIRECTORIES false RELATIVE "${include_dir}" "${include_dir}/*")
list(SORT installed)
set(headers "")
foreach(f IN LISTS installed)
  if(NOT f MATCHES "^taep/(physics/)?[a-z0-9_]+\\.hpp$")
    message(FATAL_ERROR "installed under include/ but not a public header "
                        "(include/taep/*.hpp, include/taep/physics/*.hpp): ${f}")
  endif()
  list(APPEND headers "${f}")
endforeach()
if(NOT "taep/taep.hpp" IN_LIST headers)
  message(FATAL_ERROR "include/taep/taep.hpp was not installed (found: ${installed})")
endif()
foreach(h IN LISTS headers)
  execute_process(COMMAND "${CXX_COMPILER}" -std=c++17 -fsyntax-only "-I${include_dir}" "${include_dir}/${h}"
                  RESULT_VARIABLE rc ERROR_VARIABLE err OUTPUT_QUIET)
  if(rc)
    message(FATAL_ERROR "the installed header ${h} does not compile on its own:\n${err}")
  endif()
endforeach()
list(LENGTH headers n)
message(STATUS "${n} installed headers, each compiles on its own")
execute_process(COMMAND "${CMAKE_COMMAND}" -S "${TAEP_SOURCE_DIR}/examples/downstream" -B "${WORK_DIR}/build"
                        -G "${GENERATOR}" "-DCMAKE_PREFIX_PATH=${WORK_DIR}/prefix" -DCMAKE_BUILD_TYPE=Release
                RESULT_VARIABLE rc)
if(rc)
  message(FATAL_ERROR "configuring the downstream project failed: ${rc}")
endif()
execute_process(COMMAND "${CMAKE_COMMAND}" --build "${WORK_DIR}/build" RESULT_VARIABLE rc)
if(rc)
  message(FATAL_ERROR "building the downstream project failed: ${rc}")
endif()
execute_process(COMMAND "${WORK_DIR}/build/taep_downstream" RESULT_VARIABLE rc)
if(rc)
  message(FATAL_ERROR "the downstream program failed: ${rc}")
endif()
