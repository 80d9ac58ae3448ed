#!/usr/bin/env bash
#
# Restarts one service (or all four, in dependency order) in the local
# cluster with a rolling restart, optionally rebuilding and reloading its
# image first. The quick loop without skaffold: edit, `restart.sh gc --build`.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

BUILD=0

usage() {
  cat <<USAGE
Usage: $(basename "$0") [OPTIONS] [SERVICE]

Roll SERVICE (or, without one, ac, gc, mc and mh in that order) and wait
until the new pods are ready.

SERVICE: ac | ac-service, gc | global-controller, mc | meeting-controller,
         mh | media-handler

Options:
  -b, --build        rebuild the image from services/<svc>/Dockerfile and load it first
  -n, --dry-run      print every command that would change something, run none
      --name NAME    kind cluster name (default: \$DT_CLUSTER_NAME or dark-tower)
  -h, --help         show this help

Requires: kubectl, kind (and docker or podman with --build).
USAGE
}

main() {
  dt_parse_common usage "$@"
  local arg svc services=()
  for arg in "${DT_ARGS[@]+"${DT_ARGS[@]}"}"; do
    case "${arg}" in
      -b | --build) BUILD=1 ;;
      -*) dt_usage_error "unknown option: ${arg}" ;;
      *)
        ((${#services[@]} == 0)) || dt_usage_error "only one SERVICE may be given"
        svc="$(dt_resolve_service "${arg}")" ||
          dt_usage_error "unknown service '${arg}' (expected one of: ac, gc, mc, mh or their full names)"
        services+=("${svc}")
        ;;
    esac
  done
  if ((${#services[@]} == 0)); then
    services=("${DT_SERVICES[@]}")
  fi

  dt_require kubectl kind
  dt_detect_runtime
  if ! dt_cluster_exists; then
    if [[ "${DT_DRY_RUN}" == 1 ]]; then
      dt_warn "kind cluster ${DT_CLUSTER_NAME} does not exist (a real run stops here)"
    else
      dt_die "kind cluster ${DT_CLUSTER_NAME} does not exist; run tools/local/setup.sh first"
    fi
  fi

  if [[ "${BUILD}" == 1 ]]; then
    dt_step images "rebuild and load: ${services[*]}"
    dt_resolve_images
    for svc in "${services[@]}"; do
      dt_build_and_load "${svc}"
    done
  fi

  dt_step restart "rolling restart: ${services[*]}"
  for svc in "${services[@]}"; do
    dt_kubectl rollout restart -n "${DT_NAMESPACE}" "$(dt_workload "${svc}")"
    dt_kubectl rollout status -n "${DT_NAMESPACE}" "$(dt_workload "${svc}")" --timeout=5m
  done
}

main "$@"
