# Docker targets in the spirit of the course's Makefile. They run from the
# source root (the images' build context) and drive docker-compose-dev.yaml:
#   docker-image          builds server:latest and client:latest
#   docker-compose-up     writes docker-compose-dev.yaml (5 agencies) when it is
#                         missing, builds the images, `up -d --build`
#   docker-compose-down   `stop -t 10`, then `down`
#   docker-compose-logs   follows the logs
find_program(TP0_DOCKER docker)

set(TP0_COMPOSE_FILE ${PROJECT_SOURCE_DIR}/docker-compose-dev.yaml)

if(NOT TP0_DOCKER)
  # Defined anyway, so that asking for them says why they cannot run.
  foreach(target docker-image docker-compose-up docker-compose-down docker-compose-logs)
    add_custom_target(${target}
      COMMAND ${CMAKE_COMMAND} -E echo "${target}: docker was not found when configuring"
      COMMAND ${CMAKE_COMMAND} -E false
      VERBATIM)
  endforeach()
  return()
endif()

add_custom_target(docker-image
  COMMAND ${TP0_DOCKER} build -f docker/server/Dockerfile -t server:latest .
  COMMAND ${TP0_DOCKER} build -f docker/client/Dockerfile -t client:latest .
  WORKING_DIRECTORY ${PROJECT_SOURCE_DIR}
  USES_TERMINAL
  VERBATIM)

# No DEPENDS: runs only when the file is missing, so local edits survive.
add_custom_command(OUTPUT ${TP0_COMPOSE_FILE}
  COMMAND ${PROJECT_SOURCE_DIR}/scripts/generar-compose.sh ${TP0_COMPOSE_FILE} 5
  WORKING_DIRECTORY ${PROJECT_SOURCE_DIR}
  VERBATIM)

add_custom_target(docker-compose-up
  COMMAND ${TP0_DOCKER} compose -f ${TP0_COMPOSE_FILE} up -d --build
  DEPENDS ${TP0_COMPOSE_FILE}
  WORKING_DIRECTORY ${PROJECT_SOURCE_DIR}
  USES_TERMINAL
  VERBATIM)
add_dependencies(docker-compose-up docker-image)

add_custom_target(docker-compose-down
  COMMAND ${TP0_DOCKER} compose -f ${TP0_COMPOSE_FILE} stop -t 10
  COMMAND ${TP0_DOCKER} compose -f ${TP0_COMPOSE_FILE} down
  WORKING_DIRECTORY ${PROJECT_SOURCE_DIR}
  USES_TERMINAL
  VERBATIM)

add_custom_target(docker-compose-logs
  COMMAND ${TP0_DOCKER} compose -f ${TP0_COMPOSE_FILE} logs -f
  WORKING_DIRECTORY ${PROJECT_SOURCE_DIR}
  USES_TERMINAL
  VERBATIM)
