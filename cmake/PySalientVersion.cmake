# Reads __version__ from pysalient/version.py so Python and C++ report the same version.
file(READ "${CMAKE_CURRENT_SOURCE_DIR}/pysalient/version.py" _version_py)
string(REGEX MATCH "__version__ = \"([^\"]+)\"" _match "${_version_py}")
if(NOT CMAKE_MATCH_1)
  message(FATAL_ERROR "pysalient: could not read __version__ from pysalient/version.py")
endif()
set(PYSALIENT_VERSION "${CMAKE_MATCH_1}")
