#!/usr/bin/env bash
#
# Destroys the local Dark Tower environment: stops the port-forwards that
# setup.sh started, deletes the kind cluster, and removes the local state
# (pid files, logs, saved image archives). Nothing outside that cluster and
# that state directory is touched.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() {
  cat <<USAGE
Usage: $(basename "$0") [OPTIONS]

Delete the local kind cluster and everything setup.sh started for it.

Options:
  -n, --dry-run      print every command that would change something, run none
      --name NAME    kind cluster name (default: \$DT_CLUSTER_NAME or dark-tower)
  -h, --help         show this help

Requires: kind, and docker or podman.
USAGE
}

main() {
  dt_parse_common usage "$@"
  local arg
  for arg in "${DT_ARGS[@]+"${DT_ARGS[@]}"}"; do
    case "${arg}" in
      -*) dt_usage_error "unknown option: ${arg}" ;;
      *) dt_usage_error "unexpected argument: ${arg}" ;;
    esac
  done

  dt_require kind
  dt_detect_runtime

  dt_step port-forwards "stop the port-forwards of cluster ${DT_CLUSTER_NAME}"
  dt_stop_port_forwards

  dt_step cluster "delete kind cluster ${DT_CLUSTER_NAME}"
  if dt_cluster_exists || [[ "${DT_DRY_RUN}" == 1 ]]; then
    dt_kind delete cluster --name "${DT_CLUSTER_NAME}"
  else
    dt_info "kind cluster ${DT_CLUSTER_NAME} does not exist; nothing to delete"
  fi

  dt_step state "remove local state"
  dt_run rm -rf "$(dt_state_dir)"
}

main "$@"
