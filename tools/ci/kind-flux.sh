#!/usr/bin/env bash
#
# The development environment as Flux runs it, on a throwaway kind cluster, from
# the commit under test; then the env-tests against it. What the GitHub
# workflow's `kind` job runs (it cannot run where there is no container
# runtime; its dry run is tested in tools/env-tests/tests/local_scripts.rs).
#
# Unlike tools/local/setup.sh, nothing here applies an overlay: Flux's own
# controllers (clusters/flux-system, as git pins them) reconcile the Flux
# Kustomizations of clusters/development from a GitRepository that points at
# this commit, in their dependsOn order, and the script only waits until every
# Kustomization and HelmRelease is Ready. The one difference from a real
# cluster: the Kustomization flux-system (which would re-apply gotk-sync.yaml
# and point Flux back at the main branch) is not applied; the source is this
# commit instead.
set -euo pipefail

# Its own cluster by default, so it never shares one with tools/local/setup.sh
# (whose applies kustomize-controller would revert here).
DT_CLUSTER_NAME="${DT_CLUSTER_NAME:-dark-tower-flux}"

# shellcheck source-path=SCRIPTDIR source=../local/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../local/lib.sh"

# The Flux sync objects of clusters/development besides flux-system itself;
# tools/env-tests/tests/local_scripts.rs checks this list against
# clusters/development/kustomization.yaml.
FLUX_SYNC_FILES=(platform.yaml apps.yaml)
TIMEOUT="${DT_KIND_TIMEOUT:-30m}"
DIAGNOSE_ONLY=0

usage() {
  cat <<EOF
Usage: $(basename "$0") [OPTIONS]

Create a kind cluster, let Flux reconcile the development environment from the
commit under test, wait for every Kustomization and HelmRelease to be Ready,
then run the env-tests against it.

Steps: cluster -> calico -> wait-ready -> images -> flux (clusters/flux-system)
-> source (GitRepository flux-system at the commit) -> sync (the Flux
Kustomizations of clusters/development) -> converge -> access -> env-tests.

Options:
  -n, --dry-run   print every command that would change something, run none
      --name NAME kind cluster name (default: \$DT_CLUSTER_NAME or dark-tower-flux)
      --diagnose  only print the state of the Flux objects and pods (a failed run
                  prints it by itself)
  -h, --help      show this help

Environment (GitHub Actions sets the first three):
  GITHUB_SERVER_URL, GITHUB_REPOSITORY   the repository Flux clones (https)
  GITHUB_REF                             the ref Flux checks out (refs/heads/main, refs/pull/N/merge)
  GITHUB_SHA                             the commit that ref must resolve to
  DT_GIT_TOKEN                           a read token for the clone (GITHUB_TOKEN); none for a public repository
  DT_KIND_TIMEOUT                        how long Flux gets to converge (default: ${TIMEOUT})

Requires: kind, kubectl, jq, docker or podman, cargo with cargo-nextest.
EOF
}

# The state of everything Flux manages and every pod, for a failed run.
diagnose() {
  local ctx
  ctx="$(dt_context)"
  dt_info "---- Flux and workload state (kind cluster ${DT_CLUSTER_NAME})"
  local what
  for what in gitrepositories.source.toolkit.fluxcd.io kustomizations.kustomize.toolkit.fluxcd.io \
    helmreleases.helm.toolkit.fluxcd.io pods; do
    dt_query kubectl --context "${ctx}" get "${what}" --all-namespaces -o wide >&2 || true
  done
  dt_query kubectl --context "${ctx}" get events --all-namespaces \
    --field-selector type=Warning --sort-by=.lastTimestamp >&2 || true
  dt_query kubectl --context "${ctx}" logs -n flux-system deployment/kustomize-controller --tail=100 >&2 || true
}

# After a failure, what a human needs to see first.
on_exit() {
  local status=$?
  if [[ "${status}" != 0 ]]; then
    diagnose
  fi
}

# The GitRepository flux-system, at the ref under test.
git_repository() {
  local url="$1" ref="$2" with_secret="$3"
  cat <<EOF
apiVersion: source.toolkit.fluxcd.io/v1
kind: GitRepository
metadata:
  name: flux-system
  namespace: flux-system
spec:
  interval: 1m0s
  url: ${url}
  ref:
    name: ${ref}
EOF
  if [[ "${with_secret}" == 1 ]]; then
    printf '  secretRef:\n    name: flux-system\n'
  fi
}

main() {
  dt_parse_common usage "$@"
  local arg
  for arg in "${DT_ARGS[@]+"${DT_ARGS[@]}"}"; do
    case "${arg}" in
      --diagnose) DIAGNOSE_ONLY=1 ;;
      -*) dt_usage_error "unknown option: ${arg}" ;;
      *) dt_usage_error "unexpected argument: ${arg}" ;;
    esac
  done
  if [[ "${DIAGNOSE_ONLY}" == 1 ]]; then
    diagnose
    return 0
  fi

  local server="${GITHUB_SERVER_URL:-https://github.com}" repo="${GITHUB_REPOSITORY:-}"
  local ref="${GITHUB_REF:-}" sha="${GITHUB_SHA:-}"
  [[ -n "${repo}" ]] || dt_usage_error "GITHUB_REPOSITORY (owner/name) is not set: which repository should Flux clone?"
  [[ "${ref}" == refs/* ]] || dt_usage_error "GITHUB_REF '${ref}' is not a full ref (refs/heads/..., refs/pull/N/merge)"
  [[ "${sha}" =~ ^[0-9a-f]{40}$ ]] || dt_usage_error "GITHUB_SHA '${sha}' is not a commit id"
  local url="${server%/}/${repo}"
  [[ "${url}" == https://* ]] || dt_usage_error "the repository URL ${url} is not https"

  dt_require kind kubectl jq cargo
  dt_detect_runtime
  dt_resolve_images
  local ctx
  ctx="$(dt_context)"
  if [[ "${DT_DRY_RUN}" != 1 ]]; then
    trap on_exit EXIT
  fi

  dt_create_cluster_with_calico

  dt_step images "build the service images and load them into kind (the development overlays pull none)"
  dt_load_images

  dt_step flux "install Flux's controllers as git pins them"
  dt_install_flux

  dt_step source "GitRepository flux-system at ${ref} (${sha})"
  local with_secret=0
  if [[ -n "${DT_GIT_TOKEN:-}" ]]; then
    with_secret=1
    dt_kubectl delete secret -n flux-system flux-system --ignore-not-found
    dt_run_with_stdin "${DT_GIT_TOKEN}" "DT_GIT_TOKEN" \
      kubectl --context "${ctx}" create secret generic -n flux-system flux-system \
      --from-literal=username=x-access-token --from-file=password=/dev/stdin
  fi
  dt_run_with_stdin "$(git_repository "${url}" "${ref}" "${with_secret}")" \
    "GitRepository flux-system: ${url} ${ref}" \
    kubectl --context "${ctx}" apply --server-side --field-manager=dt-ci -f -
  dt_kubectl wait -n flux-system gitrepositories.source.toolkit.fluxcd.io/flux-system \
    --for=condition=Ready --timeout=5m
  if [[ "${DT_DRY_RUN}" == 1 ]]; then
    dt_info "dry run: the fetched revision is compared with ${sha} on a real cluster"
  else
    local revision
    revision="$(dt_query kubectl --context "${ctx}" get -n flux-system gitrepositories.source.toolkit.fluxcd.io/flux-system \
      -o jsonpath='{.status.artifact.revision}')"
    [[ "${revision}" == *"${sha}" ]] ||
      dt_die "Flux fetched ${revision} for ${ref}, not ${sha}: the ref moved on since this job started; run the job again"
  fi

  dt_step sync "the Flux Kustomizations of clusters/development"
  local file
  for file in "${FLUX_SYNC_FILES[@]}"; do
    dt_kubectl apply --server-side --field-manager=dt-ci -f "${DT_REPO_ROOT}/clusters/development/${file}"
  done

  dt_step converge "wait for every Kustomization and HelmRelease to be Ready (Flux applies them in dependsOn order)"
  dt_kubectl wait -n flux-system kustomizations.kustomize.toolkit.fluxcd.io --all \
    --for=condition=Ready --timeout="${TIMEOUT}"
  dt_kubectl wait helmreleases.helm.toolkit.fluxcd.io --all --all-namespaces \
    --for=condition=Ready --timeout="${TIMEOUT}"

  dt_step access "forward AC and GC to localhost, where the env-tests reach them"
  dt_stop_port_forwards
  dt_port_forward "${DT_NAMESPACE}" ac-service 8082 8082 "AC HTTP"
  dt_port_forward "${DT_NAMESPACE}" global-controller 8080 8080 "GC HTTP"

  dt_step env-tests "the env-tests against the cluster, as the synthetic prober git declares"
  # The prober's credentials are the ones git declares (Secret
  # synthetic-prober-client, clients.toml); nothing is registered by hand.
  export DT_ENV_TESTS_CLIENT_ID=synthetic-prober
  if [[ "${DT_DRY_RUN}" != 1 ]]; then
    DT_ENV_TESTS_CLIENT_SECRET="$(dt_query kubectl --context "${ctx}" get secret -n "${DT_NAMESPACE}" \
      synthetic-prober-client -o jsonpath='{.data.CLIENT_SECRET}' | base64 -d)"
    export DT_ENV_TESTS_CLIENT_SECRET
  fi
  export DT_ENV_TESTS_CONTEXT="${ctx}" DT_ENV_TESTS_REQUIRE=1
  dt_run cargo nextest run --profile ci -p env-tests
}

main "$@"
