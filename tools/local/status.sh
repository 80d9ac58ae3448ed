#!/usr/bin/env bash
#
# Shows the state of the local Dark Tower environment: the cluster, its
# nodes and CNI, the Flux controllers and platform HelmReleases, the
# dark-tower workloads, the port-forwards setup.sh started, and whether each
# local endpoint answers /health. Read-only.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() {
  cat <<USAGE
Usage: $(basename "$0") [OPTIONS]

Print the state of the local cluster. Changes nothing.

Options:
  -n, --dry-run      print the commands status would run, run none
      --name NAME    kind cluster name (default: \$DT_CLUSTER_NAME or dark-tower)
  -h, --help         show this help

Requires: kind, kubectl, curl.
USAGE
}

# status.sh only reads, so "dry run" here means: list the reads, do none.
show() {
  dt_print_cmd "$@"
  if [[ "${DT_DRY_RUN}" == 1 ]]; then
    return 0
  fi
  "$@" || dt_warn "'$*' failed"
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

  dt_require kind kubectl curl
  local ctx
  ctx="$(dt_context)"

  dt_step cluster "kind cluster ${DT_CLUSTER_NAME}"
  show kind get clusters
  if [[ "${DT_DRY_RUN}" != 1 ]] && ! kind get clusters 2>/dev/null | grep -qx -- "${DT_CLUSTER_NAME}"; then
    dt_info "kind cluster ${DT_CLUSTER_NAME} does not exist; run tools/local/setup.sh"
    exit 1
  fi
  show kubectl --context "${ctx}" get nodes -o wide
  show kubectl --context "${ctx}" get pods -n kube-system -l k8s-app=calico-node

  dt_step platform "Flux controllers and HelmReleases"
  show kubectl --context "${ctx}" get deployments -n flux-system
  show kubectl --context "${ctx}" get helmreleases.helm.toolkit.fluxcd.io --all-namespaces

  dt_step workloads "namespace ${DT_NAMESPACE}"
  show kubectl --context "${ctx}" get statefulsets,deployments,pods,services -n "${DT_NAMESPACE}" -o wide

  dt_step port-forwards "port-forwards started by setup.sh"
  local entry ns svc lport rport what pidfile pid state
  for entry in "${DT_PORT_FORWARDS[@]}"; do
    IFS='|' read -r ns svc lport rport what <<<"${entry}"
    pidfile="$(dt_state_dir)/port-forwards/${svc}.pid"
    state="not running"
    if [[ -f "${pidfile}" ]]; then
      pid="$(<"${pidfile}")"
      if [[ "${pid}" =~ ^[0-9]+$ ]] && kill -0 "${pid}" 2>/dev/null; then
        state="running (pid ${pid})"
      fi
    fi
    printf '  localhost:%-5s -> %s/%s:%s  %s  [%s]\n' "${lport}" "${ns}" "${svc}" "${rport}" "${state}" "${what}"
  done

  dt_step endpoints "health of the local endpoints"
  local url
  for url in http://localhost:8080/health http://localhost:8082/health \
    http://localhost:8081/health http://localhost:8083/health; do
    show curl -fsS --max-time 3 -o /dev/null -w "${url} %{http_code}\n" "${url}"
  done
}

main "$@"
