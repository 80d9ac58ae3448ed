#!/usr/bin/env bash
#
# Creates the local Dark Tower environment: a kind cluster with Calico (so
# NetworkPolicies are enforced as in the cloud), the four service images built
# from this checkout, the platform and overlays/development applied in the
# order Flux would reconcile them, service credentials seeded in AC, and
# port-forwards for the TCP endpoints. Safe to re-run: every step is
# idempotent.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SKIP_BUILD=0
PORT_FORWARDS=1

# Scopes per SPEC.md; the client ids and secrets come from each workload's
# own env (GC_CLIENT_ID/GC_CLIENT_SECRET, ...), so AC and the pods agree.
CREDENTIALS=(
  "global-controller|GC|internal:meeting-token service.write.mc"
  "meeting-controller|MC|service.write.gc service.write.mh"
  "media-handler|MH|service.write.gc service.write.mc"
)
# The client tools/env-tests uses for the auth and join tests; its secret is
# generated here and kept in the cluster as Secret env-tests-client.
ENV_TESTS_CLIENT_ID="env-tests"
ENV_TESTS_SCOPES="meeting:create meeting:join"

usage() {
  cat <<EOF
Usage: $(basename "$0") [OPTIONS]

Create (or bring up to date) the local Dark Tower cluster.

Steps: cluster create -> Calico -> wait for nodes Ready -> build and load
images -> platform (Flux source/helm controllers + overlays/development/platform)
-> mesh (overlays/development/platform/linkerd) -> overlays/development (namespace, postgres, redis, ac, gc, mc, mh) -> migrations (AC runs them at start) -> service
credentials -> rollouts -> port-forwards.

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

# Prints the value of env var $2 as workload $1 sees it: a literal value, or
# the key it references in a Secret or ConfigMap (env or envFrom).
env_value() {
  local workload="$1" var="$2" json src name key data
  # A jq program: the \$names are jq's, not the shell's.
  # shellcheck disable=SC2016
  local prog='
    .spec.template.spec.containers[] as $c
    | ( ($c.env // [])[] | select(.name == $v)
        | if .value != null then "value\t\(.value)\t-"
          elif .valueFrom.secretKeyRef then "secret\t\(.valueFrom.secretKeyRef.name)\t\(.valueFrom.secretKeyRef.key)"
          elif .valueFrom.configMapKeyRef then "configmap\t\(.valueFrom.configMapKeyRef.name)\t\(.valueFrom.configMapKeyRef.key)"
          else empty end ),
      ( ($c.envFrom // [])[] | (.prefix // "") as $p | select($v | startswith($p))
        | if .secretRef then "secret\t\(.secretRef.name)\t\($v | ltrimstr($p))"
          elif .configMapRef then "configmap\t\(.configMapRef.name)\t\($v | ltrimstr($p))"
          else empty end )'
  json="$(dt_query kubectl --context "$(dt_context)" get -n "${DT_NAMESPACE}" "${workload}" -o json)"
  while IFS=$'\t' read -r src name key; do
    case "${src}" in
      value)
        printf '%s' "${name}"
        return 0
        ;;
      secret | configmap)
        data="$(dt_query kubectl --context "$(dt_context)" get -n "${DT_NAMESPACE}" "${src}" "${name}" -o json |
          jq -r --arg k "${key}" '.data[$k] // empty')"
        if [[ -n "${data}" ]]; then
          if [[ "${src}" == secret ]]; then
            base64 -d <<<"${data}"
          else
            printf '%s' "${data}"
          fi
          return 0
        fi
        ;;
    esac
  done < <(jq -r --arg v "${var}" "${prog}" <<<"${json}")
  return 1
}

# Registers one client in AC through the AC binary inside the AC pod (the
# image has no shell; the secret goes in on stdin, never on a command line).
register_client() {
  local client_id="$1" scopes="$2" secret="$3" origin="$4"
  dt_run_with_stdin "${secret}" "${origin}" \
    kubectl --context "$(dt_context)" exec -i -n "${DT_NAMESPACE}" statefulset/ac-service -c ac-service -- \
    ac-service register-client --client-id "${client_id}" --scopes "${scopes}"
}

seed_credentials() {
  local entry svc prefix scopes workload client_id secret
  for entry in "${CREDENTIALS[@]}"; do
    IFS='|' read -r svc prefix scopes <<<"${entry}"
    workload="$(dt_workload "${svc}")"
    if [[ "${DT_DRY_RUN}" == 1 ]]; then
      client_id="<${prefix}_CLIENT_ID of ${workload}>"
      secret=""
    else
      client_id="$(env_value "${workload}" "${prefix}_CLIENT_ID")" ||
        dt_die "${workload} has no ${prefix}_CLIENT_ID in its env; check overlays/development/${svc}"
      secret="$(env_value "${workload}" "${prefix}_CLIENT_SECRET")" ||
        dt_die "${workload} has no ${prefix}_CLIENT_SECRET in its env; check overlays/development/${svc}"
      [[ -n "${client_id}" && -n "${secret}" ]] ||
        dt_die "${workload} has an empty ${prefix}_CLIENT_ID or ${prefix}_CLIENT_SECRET"
    fi
    register_client "${client_id}" "${scopes}" "${secret}" "${prefix}_CLIENT_SECRET of ${workload}"
  done

  # The env-tests client: a fresh random secret each run, stored where the
  # tests (kube-rs) read it.
  local secret_file
  secret_file="$(dt_state_dir)/env-tests-client-secret"
  secret=""
  if [[ "${DT_DRY_RUN}" != 1 ]]; then
    secret="$(od -An -tx1 -N24 /dev/urandom | tr -d ' \n')"
  fi
  register_client "${ENV_TESTS_CLIENT_ID}" "${ENV_TESTS_SCOPES}" "${secret}" "a fresh random secret"
  dt_run mkdir -p "$(dt_state_dir)"
  if [[ "${DT_DRY_RUN}" != 1 ]]; then
    (
      umask 077
      printf '%s' "${secret}" >"${secret_file}"
    )
  fi
  dt_kubectl delete secret -n "${DT_NAMESPACE}" env-tests-client --ignore-not-found
  dt_kubectl create secret generic -n "${DT_NAMESPACE}" env-tests-client \
    --from-literal=client_id="${ENV_TESTS_CLIENT_ID}" --from-file=client_secret="${secret_file}"
  dt_kubectl label secret -n "${DT_NAMESPACE}" env-tests-client \
    app.kubernetes.io/part-of=dark-tower app.kubernetes.io/managed-by=dt-local created-by=setup.sh
  dt_run rm -f "${secret_file}"
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

  dt_step migrations "wait for PostgreSQL and Redis, then AC (it runs its migrations at start)"
  dt_kubectl wait --for=condition=Ready -n "${DT_NAMESPACE}" clusters.postgresql.cnpg.io/postgres --timeout=10m
  dt_kubectl rollout status -n "${DT_NAMESPACE}" statefulset/redis --timeout=10m
  dt_kubectl rollout status -n "${DT_NAMESPACE}" "$(dt_workload ac-service)" --timeout=10m

  dt_step credentials "register the service clients in AC"
  seed_credentials

  dt_step rollout "wait for GC, MC and MH (they retry AC and GC until credentials exist)"
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
  AC                  http://localhost:8082   (port-forward)
  Status:   tools/local/status.sh
  Restart:  tools/local/restart.sh [ac|gc|mc|mh] [--build]
  Tests:    KUBECONFIG=~/.kube/config cargo nextest run -p env-tests
EOF
}

main "$@"
