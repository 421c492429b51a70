# Every third-party dependency, found as an imported target from Debian 12 packages
# (scripts/install-deps.sh installs them). Nothing is downloaded at configure time.
find_package(MPI REQUIRED COMPONENTS CXX)
find_package(Eigen3 3.4 REQUIRED NO_MODULE)
find_package(TBB REQUIRED)
find_package(OpenMP REQUIRED COMPONENTS CXX)  # faiss's imported target needs OpenMP::OpenMP_CXX
find_package(faiss REQUIRED)
find_package(yaml-cpp REQUIRED)
find_package(CLI11 REQUIRED)
find_package(nlohmann_json 3 REQUIRED)  # results.json and other JSON documents (src/report)
find_package(OpenSSL REQUIRED COMPONENTS Crypto)  # SHA-256 of input files in manifests

# Parallel HDF5: Debian's libhdf5-openmpi-dev. Point FindHDF5 at the MPI build so that a
# serial libhdf5-dev, if also installed, is not picked up by accident.
set(HDF5_PREFER_PARALLEL TRUE)
if(EXISTS /usr/lib/x86_64-linux-gnu/hdf5/openmpi AND NOT HDF5_ROOT)
    set(HDF5_ROOT /usr/lib/x86_64-linux-gnu/hdf5/openmpi)
endif()
find_package(HDF5 REQUIRED COMPONENTS C)
if(NOT HDF5_IS_PARALLEL)
    message(FATAL_ERROR "pfcr needs parallel HDF5 (Debian: libhdf5-openmpi-dev); found a serial build")
endif()
if(NOT TARGET hdf5::hdf5)
    add_library(hdf5::hdf5 INTERFACE IMPORTED)
    target_include_directories(hdf5::hdf5 INTERFACE ${HDF5_C_INCLUDE_DIRS} ${HDF5_INCLUDE_DIRS})
    target_link_libraries(hdf5::hdf5 INTERFACE ${HDF5_C_LIBRARIES} ${HDF5_LIBRARIES})
    target_compile_definitions(hdf5::hdf5 INTERFACE ${HDF5_C_DEFINITIONS} ${HDF5_DEFINITIONS})
endif()

if(PFCR_BUILD_TESTS)
    find_package(GTest REQUIRED)
endif()
if(PFCR_BUILD_BENCHMARKS)
    find_package(benchmark REQUIRED)
endif()
