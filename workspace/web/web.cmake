# web.cmake: compile the web page's files (this directory) into the
# workspace server library as web-assets.c (docs/web.md).  Included from
# workspace/server/CMakeLists.txt after tworkspace is defined.
set(TETHER_WEB_DIR ${PROJECT_SOURCE_DIR}/workspace/web)
set(TETHER_WEB_FILES app.html login.html app.css app.js job.js logview.js
  login.js metrics.js)
set(TETHER_WEB_DEPS)
foreach(f IN LISTS TETHER_WEB_FILES)
  list(APPEND TETHER_WEB_DEPS ${TETHER_WEB_DIR}/${f})
endforeach()
string(REPLACE ";" "," TETHER_WEB_LIST "${TETHER_WEB_FILES}")
add_custom_command(
  OUTPUT ${CMAKE_CURRENT_BINARY_DIR}/web-assets.c
  COMMAND ${CMAKE_COMMAND} -DOUT=${CMAKE_CURRENT_BINARY_DIR}/web-assets.c
          -DDIR=${TETHER_WEB_DIR} -DFILES=${TETHER_WEB_LIST}
          -P ${TETHER_WEB_DIR}/embed.cmake
  DEPENDS ${TETHER_WEB_DEPS} ${TETHER_WEB_DIR}/embed.cmake
  COMMENT "Embedding the web page (workspace/web)")
target_sources(tworkspace PRIVATE ${CMAKE_CURRENT_BINARY_DIR}/web-assets.c)
