#!/usr/bin/env bash
#
# Creates the local Dark Tower environment: a kind cluster with Calico (so
# NetworkPolicies are enforced as in the cloud), the four service images built
# from this checkout, the platform and overlays/development applied in the
# order Flux would reconcile them, and port-forwards for the TCP endpoints.
# Nothing is registered by hand: AC applies the clients the overlay declares
# (overlays/development/ac-service/clients.toml) at start, as in every
# cluster. Safe to re-run: every step is idempotent.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SKIP_BUILD=0
PORT_FORWARDS=1

usage() {
  cat <<EOF
Usage: $(basename "$0") [OPTIONS]

Create (or bring up to date) the local Dark Tower cluster.

Steps: cluster create -> Calico -> wait for nodes Ready -> build and load
images -> platform (Flux source/helm controllers + overlays/development/platform,
then its monitoring rules and dashboards) -> mesh (overlays/development/platform/linkerd) -> overlays/development (namespace, postgres, redis, ac, gc, mc, mh) -> migrations
(AC runs them at start, then applies the declared clients) -> rollouts ->
port-forwards.

Options:
  -n, --dry-run          print every command that would change something, run none
      --name NAME        kind cluster name (default: \$DT_CLUSTER_NAME or dark-tower)
      --skip-build       do not build or load images (use what the nodes have)
      --no-port-forward  do not start kubectl port-forwards
  -h, --help             show this help

Environment:
  DT_CONTAINER_RUNTIME   docker or podman (default: whichever answers, docker first)
  DT_CALICO_VERSION      Calico release to install (default: ${DT_CALICO_VERSION})
  DT_STATE_HOME          where pid files and logs go (default: \$XDG_STATE_HOME or ~/.local/state)

Requires: kind, kubectl, jq, and docker or podman.
EOF
}

start_port_forwards() {
  local entry ns svc lport rport what
  dt_stop_port_forwards
  for entry in "${DT_PORT_FORWARDS[@]}"; do
    IFS='|' read -r ns svc lport rport what <<<"${entry}"
    dt_port_forward "${ns}" "${svc}" "${lport}" "${rport}" "${what}"
  done
}

main() {
  dt_parse_common usage "$@"
  local arg
  for arg in "${DT_ARGS[@]+"${DT_ARGS[@]}"}"; do
    case "${arg}" in
      --skip-build) SKIP_BUILD=1 ;;
      --no-port-forward) PORT_FORWARDS=0 ;;
      -*) dt_usage_error "unknown option: ${arg}" ;;
      *) dt_usage_error "unexpected argument: ${arg}" ;;
    esac
  done

  dt_require kind kubectl jq
  dt_detect_runtime
  if [[ "${SKIP_BUILD}" == 0 ]]; then
    dt_resolve_images
  fi
  local ctx svc
  ctx="$(dt_context)"

  dt_create_cluster_with_calico

  dt_step images "build the service images and load them into kind"
  if [[ "${SKIP_BUILD}" == 1 ]]; then
    dt_info "--skip-build: using the images already on the nodes"
  else
    dt_load_images
  fi

  dt_step platform "install Flux's controllers as git pins them, then the platform HelmReleases"
  # The same components every cluster runs (clusters/flux-system). No sync
  # objects are applied, so kustomize-controller stays idle: this script plays
  # its part (applying overlays in dependsOn order) so edits apply without a
  # git push.
  dt_install_flux
  dt_kubectl apply --server-side --force-conflicts --field-manager=dt-local \
    -k "${DT_REPO_ROOT}/overlays/development/platform"
  dt_kubectl wait --for=condition=Ready helmreleases.helm.toolkit.fluxcd.io --all --all-namespaces --timeout=20m
  # Alert rules and dashboards (Flux's `monitoring`, after `platform`, whose
  # kube-prometheus-stack brings the PrometheusRule CRD).
  dt_kubectl apply --server-side --force-conflicts --field-manager=dt-local \
    -k "${DT_REPO_ROOT}/overlays/development/platform/monitoring"

  dt_step mesh "Linkerd: its identity from cert-manager and trust-manager, then its control plane"
  dt_kubectl apply --server-side --force-conflicts --field-manager=dt-local \
    -k "${DT_REPO_ROOT}/overlays/development/platform/linkerd"
  dt_kubectl wait --for=condition=Ready helmreleases.helm.toolkit.fluxcd.io --all --all-namespaces --timeout=20m

  dt_step overlay "apply overlays/development in the dependsOn order of clusters/development"
  local overlay dir
  for overlay in "${DT_OVERLAYS[@]}"; do
    dir="${DT_REPO_ROOT}/overlays/development"
    [[ "${overlay}" == . ]] || dir+="/${overlay}"
    dt_kubectl apply --server-side --force-conflicts --field-manager=dt-local -k "${dir}"
  done
  # NodePort Services behind kind's extraPortMappings (GC HTTP, MC/MH UDP).
  dt_kubectl apply --server-side --force-conflicts --field-manager=dt-local \
    -f "${DT_LOCAL_DIR}/local-access.yaml"

  dt_step migrations "wait for PostgreSQL and Redis, then AC (it runs its migrations and applies the declared clients at start)"
  dt_kubectl wait --for=condition=Ready -n "${DT_NAMESPACE}" clusters.postgresql.cnpg.io/postgres --timeout=10m
  dt_kubectl rollout status -n "${DT_NAMESPACE}" statefulset/redis --timeout=10m
  dt_kubectl rollout status -n "${DT_NAMESPACE}" "$(dt_workload ac-service)" --timeout=10m

  dt_step rollout "wait for GC, MC and MH (they sign in to AC with the clients clients.toml declares)"
  for svc in global-controller meeting-controller media-handler; do
    dt_kubectl rollout status -n "${DT_NAMESPACE}" "$(dt_workload "${svc}")" --timeout=10m
  done

  dt_step port-forwards "forward the TCP endpoints to localhost"
  if [[ "${PORT_FORWARDS}" == 1 ]]; then
    start_port_forwards
  else
    dt_info "--no-port-forward: skipped"
  fi

  if [[ "${DT_DRY_RUN}" == 1 ]]; then
    printf '\nDry run complete: nothing was changed.\n'
    return 0
  fi
  cat <<EOF

Dark Tower is up in kind cluster ${DT_CLUSTER_NAME} (context ${ctx}).
  GC HTTP API         http://localhost:8080   (kind port mapping)
  MC WebTransport     https://localhost:4433  (UDP, kind port mapping)
  MH media (QUIC)     localhost:4434          (UDP, kind port mapping)
    GC hands out each replica's public name (meeting-controller-0.media.dev.dark-tower.example,
    media-handler-0.media.dev.dark-tower.example; docs/ingress.md): point them at 127.0.0.1
    in /etc/hosts to join from this machine.
  AC                  http://localhost:8082   (port-forward)
  Status:   tools/local/status.sh
  Restart:  tools/local/restart.sh [ac|gc|mc|mh] [--build]
  Tests:    KUBECONFIG=~/.kube/config cargo nextest run -p env-tests
EOF
}

main "$@"
