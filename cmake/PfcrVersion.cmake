# Software version recorded in every output file: `git describe` when building from a git
# checkout, the project version otherwise. Re-evaluated at configure time only.
execute_process(COMMAND git describe --always --dirty --tags
                WORKING_DIRECTORY ${PROJECT_SOURCE_DIR}
                OUTPUT_VARIABLE PFCR_GIT_DESCRIBE OUTPUT_STRIP_TRAILING_WHITESPACE
                ERROR_QUIET RESULT_VARIABLE pfcr_git_rc)
if(pfcr_git_rc EQUAL 0 AND PFCR_GIT_DESCRIBE)
    set(PFCR_SOFTWARE_VERSION "${PROJECT_VERSION}+${PFCR_GIT_DESCRIBE}")
else()
    set(PFCR_SOFTWARE_VERSION "${PROJECT_VERSION}")
endif()
configure_file(${PROJECT_SOURCE_DIR}/src/core/version.hpp.in
               ${PROJECT_BINARY_DIR}/generated/pfcr/version.hpp @ONLY)
