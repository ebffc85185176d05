# Debian package through CPack: `cmake --build build --target package` makes
# build/tether_<version>_<arch>.deb with every binary, the systemd unit, the
# configuration sample and the docs; the maintainer scripts in install/debian/
# create the job user and the directories (docs/operations.md).
#
# The package installs under /usr.  Configure the build with
# -DCMAKE_INSTALL_PREFIX=/usr so that the paths compiled into the binaries
# (TETHER_SYSCONFDIR, TETHER_LIBEXECDIR) match the package's.
if(NOT CMAKE_INSTALL_PREFIX STREQUAL "/usr")
  message(STATUS "tether: packages install under /usr but CMAKE_INSTALL_PREFIX "
    "is ${CMAKE_INSTALL_PREFIX}; configure with -DCMAKE_INSTALL_PREFIX=/usr "
    "to build a .deb for distribution")
endif()

set(CPACK_GENERATOR "DEB")
set(CPACK_PACKAGE_NAME "tether")
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_VENDOR "Tether")
set(CPACK_PACKAGE_CONTACT "Tether maintainers <tether@localhost>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY
  "node agent that attaches Linux servers to an ML workspace")
set(CPACK_PACKAGE_DESCRIPTION
  "tether-agent runs jobs from a Tether workspace on this machine in a sandbox,
a Docker container or through Slurm; tether-runner supervises each job;
tether-workspace is the server and tether the command-line client.")
set(CPACK_PACKAGING_INSTALL_PREFIX "/usr")
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION "admin")
set(CPACK_DEBIAN_PACKAGE_PRIORITY "optional")
# The runtime libraries of Debian 12 that the binaries link (the -dev
# packages of cmake/TetherDeps.cmake, minus -dev); passwd gives useradd to
# the maintainer scripts, procps /bin/kill to the unit's ExecReload.
set(CPACK_DEBIAN_PACKAGE_DEPENDS
  "libc6, libcurl4, libssh2-1, libjansson4, libgit2-1.5, libcgroup2, libsqlite3-0, libmicrohttpd12, libarchive13, libssl3, libpcre2-8-0, libprotobuf-c1, passwd, procps")
set(CPACK_DEBIAN_PACKAGE_RECOMMENDS "ca-certificates, git, python3, python3-venv")
set(CPACK_DEBIAN_PACKAGE_SUGGESTS "docker.io, slurm-client")
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
  "${PROJECT_SOURCE_DIR}/install/debian/postinst;${PROJECT_SOURCE_DIR}/install/debian/prerm;${PROJECT_SOURCE_DIR}/install/debian/postrm")
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
# Package only what is installed; never the build machine's paths.
set(CPACK_STRIP_FILES ON)
set(CPACK_SOURCE_IGNORE_FILES "/build/;/\\\\.git/")

include(CPack)
