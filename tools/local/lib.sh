# shellcheck shell=bash
#
# Shared helpers for tools/local/*.sh. Sourced by every script, never run on
# its own. It holds the one copy of: option parsing for the common flags, the
# dry-run machinery, tool checks, container-runtime detection, the service
# table, and the names everything else derives from (cluster, context,
# namespace, state directory).
#
# Conventions the scripts (and tools/env-tests/tests/local_scripts.rs) rely on:
#   `==> step: <name>: <what>`  on stdout marks the start of each step;
#   `+ <command>`               on stdout is a command that changes something
#                               (printed before it runs; with --dry-run it is
#                               printed and not run);
#   `# query: <command>`        on stderr is a read-only command run to decide
#                               what to do (it runs in dry-run mode too).

if [[ -n "${DT_LIB_LOADED:-}" ]]; then
  return 0
fi
DT_LIB_LOADED=1

DT_LOCAL_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
DT_REPO_ROOT="${DT_REPO_ROOT:-$(cd "${DT_LOCAL_DIR}/../.." && pwd)}"
DT_CLUSTER_NAME="${DT_CLUSTER_NAME:-dark-tower}"
# shellcheck disable=SC2034 # read by the scripts that source this file
DT_NAMESPACE="dark-tower"
DT_DRY_RUN=0
DT_RUNTIME=""
DT_CALICO_VERSION="${DT_CALICO_VERSION:-v3.28.2}"

# The four services, in the order the Flux dependsOn graph starts them.
DT_SERVICES=(ac-service global-controller meeting-controller media-handler)

# The development overlays after the platform, in an order that respects the
# dependsOn of the Flux Kustomizations in clusters/development ("." is
# overlays/development itself: the namespace and its policies).
# tools/env-tests/tests/local_scripts.rs checks this against those files.
# shellcheck disable=SC2034 # read by the scripts that source this file
DT_OVERLAYS=(. postgres redis ac-service global-controller meeting-controller media-handler)

# Local ports opened by `kubectl port-forward` (TCP only; the UDP ports and
# GC's HTTP API come in through kind's extraPortMappings instead).
# Format: namespace|service|local port|remote port|what it is
# shellcheck disable=SC2034 # read by the scripts that source this file
DT_PORT_FORWARDS=(
  "dark-tower|ac-service|8082|8082|AC HTTP (tokens, JWKS)"
  "dark-tower|global-controller|50051|50051|GC gRPC"
  "dark-tower|meeting-controller|8081|8081|MC health/metrics"
  "dark-tower|media-handler|8083|8083|MH health/metrics"
)

dt_context() { printf 'kind-%s' "${DT_CLUSTER_NAME}"; }

dt_state_dir() {
  printf '%s/dark-tower/%s' "${DT_STATE_HOME:-${XDG_STATE_HOME:-${HOME}/.local/state}}" "${DT_CLUSTER_NAME}"
}

dt_info() { printf '%s\n' "$*" >&2; }
dt_warn() { printf 'warning: %s\n' "$*" >&2; }
dt_die() {
  printf 'error: %s\n' "$*" >&2
  exit 1
}

# Usage errors exit 2, like every CLI in the repository.
dt_usage_error() {
  printf 'error: %s\n' "$1" >&2
  printf "Run '%s --help' for usage.\n" "$(basename "$0")" >&2
  exit 2
}

dt_step() {
  local name="$1"
  shift
  printf '==> step: %s: %s\n' "${name}" "$*"
}

# Quotes one word only when the shell needs it, so printed commands stay
# readable and can still be pasted back into a shell.
dt_quote() {
  if [[ "$1" =~ ^[A-Za-z0-9_./:=,@%+-]+$ ]]; then
    printf '%s' "$1"
  else
    printf "'%s'" "${1//\'/\'\\\'\'}"
  fi
}

# Prints a command the way a shell would read it back.
dt_print_cmd() {
  local out="+"
  local arg
  for arg in "$@"; do
    out+=" $(dt_quote "${arg}")"
  done
  printf '%s\n' "${out}"
}

# Runs a command that changes something; with --dry-run only prints it.
dt_run() {
  dt_print_cmd "$@"
  if [[ "${DT_DRY_RUN}" == 1 ]]; then
    return 0
  fi
  "$@"
}

# Like dt_run, but feeds $1 to the command's stdin. The value is never printed
# (it is a secret); $2 says where it came from.
dt_run_with_stdin() {
  local value="$1" origin="$2"
  shift 2
  printf '%s  # stdin: %s\n' "$(dt_print_cmd "$@")" "${origin}"
  if [[ "${DT_DRY_RUN}" == 1 ]]; then
    return 0
  fi
  printf '%s' "${value}" | "$@"
}

# Runs a read-only command, in dry-run mode too, and says so on stderr.
# The notice goes to fd 3 (a copy of stderr) so that callers silencing the
# command's own output still show what was asked.
exec 3>&2
dt_query() {
  printf '# query: %s\n' "$(dt_print_cmd "$@" | cut -c3-)" >&3
  "$@"
}

dt_install_hint() {
  case "$1" in
    kind) printf 'https://kind.sigs.k8s.io/docs/user/quick-start/#installation' ;;
    kubectl) printf 'https://kubernetes.io/docs/tasks/tools/' ;;
    flux) printf 'https://fluxcd.io/flux/installation/#install-the-flux-cli' ;;
    jq) printf 'apt-get install jq' ;;
    skaffold) printf 'https://skaffold.dev/docs/install/' ;;
    docker) printf 'https://docs.docker.com/engine/install/' ;;
    podman) printf 'apt-get install podman' ;;
    curl) printf 'apt-get install curl' ;;
    *) printf 'your package manager' ;;
  esac
}

# dt_require TOOL...: stops with the names of every missing tool. In dry-run
# mode it only warns, so a dry run works on a machine without the tools.
dt_require() {
  local missing=() tool
  for tool in "$@"; do
    if ! command -v "${tool}" >/dev/null 2>&1; then
      missing+=("${tool}")
    fi
  done
  if ((${#missing[@]} == 0)); then
    return 0
  fi
  for tool in "${missing[@]}"; do
    if [[ "${DT_DRY_RUN}" == 1 ]]; then
      dt_warn "required tool '${tool}' is not installed (a real run stops here); install: $(dt_install_hint "${tool}")"
    else
      printf "error: required tool '%s' is not installed; install: %s\n" "${tool}" "$(dt_install_hint "${tool}")" >&2
    fi
  done
  if [[ "${DT_DRY_RUN}" != 1 ]]; then
    exit 1
  fi
}

# Picks docker or podman: DT_CONTAINER_RUNTIME wins, then a docker whose daemon
# answers, then a working podman.
dt_detect_runtime() {
  if [[ -n "${DT_CONTAINER_RUNTIME:-}" ]]; then
    case "${DT_CONTAINER_RUNTIME}" in
      docker | podman) ;;
      *) dt_die "DT_CONTAINER_RUNTIME must be 'docker' or 'podman', not '${DT_CONTAINER_RUNTIME}'" ;;
    esac
    dt_require "${DT_CONTAINER_RUNTIME}"
    DT_RUNTIME="${DT_CONTAINER_RUNTIME}"
  elif command -v docker >/dev/null 2>&1 && dt_query docker info >/dev/null 2>&1; then
    DT_RUNTIME=docker
  elif command -v podman >/dev/null 2>&1 && dt_query podman info >/dev/null 2>&1; then
    DT_RUNTIME=podman
  elif [[ "${DT_DRY_RUN}" == 1 ]]; then
    dt_warn "neither docker nor podman answers (a real run stops here); showing docker commands"
    DT_RUNTIME=docker
  else
    dt_die "no container runtime: install docker ($(dt_install_hint docker)) or podman and make sure 'docker info' or 'podman info' works"
  fi
  dt_info "container runtime: ${DT_RUNTIME}"
}

# kind talks to podman only when told to.
dt_kind() {
  if [[ "${DT_RUNTIME}" == podman ]]; then
    dt_run env KIND_EXPERIMENTAL_PROVIDER=podman kind "$@"
  else
    dt_run kind "$@"
  fi
}

dt_cluster_exists() {
  local clusters
  if [[ "${DT_RUNTIME}" == podman ]]; then
    clusters="$(dt_query env KIND_EXPERIMENTAL_PROVIDER=podman kind get clusters 2>/dev/null || true)"
  else
    clusters="$(dt_query kind get clusters 2>/dev/null || true)"
  fi
  grep -qx -- "${DT_CLUSTER_NAME}" <<<"${clusters}"
}

# Every kubectl call names the kind context explicitly, so a script can never
# act on whatever cluster the user's current context happens to point at.
dt_kubectl() {
  dt_run kubectl --context "$(dt_context)" "$@"
}

# Maps the names people type (ac, gc, mc, mh or the full names) to a service.
dt_resolve_service() {
  case "$1" in
    ac | ac-service) printf 'ac-service' ;;
    gc | global-controller) printf 'global-controller' ;;
    mc | meeting-controller) printf 'meeting-controller' ;;
    mh | media-handler) printf 'media-handler' ;;
    *) return 1 ;;
  esac
}

dt_workload() {
  case "$1" in
    ac-service | meeting-controller | media-handler) printf 'statefulset/%s' "$1" ;;
    *) printf 'deployment/%s' "$1" ;;
  esac
}

# Fills DT_IMAGES[service] with the image reference the service's
# development overlay deploys, so the images we build are exactly the ones
# the pods ask for.
declare -A DT_IMAGES=()
dt_resolve_images() {
  local svc overlay rendered ref
  for svc in "${DT_SERVICES[@]}"; do
    overlay="${DT_REPO_ROOT}/overlays/development/${svc}"
    rendered=""
    if command -v kubectl >/dev/null 2>&1 && [[ -d "${overlay}" ]]; then
      rendered="$(dt_query kubectl kustomize "${overlay}" 2>/dev/null || true)"
    fi
    ref="$(dt_image_for "${svc}" <<<"${rendered}")"
    if [[ -z "${ref}" ]]; then
      if [[ "${DT_DRY_RUN}" == 1 ]]; then
        dt_warn "could not read the ${svc} image from ${overlay} (a real run stops here)"
        ref="<${svc} image from overlays/development/${svc}>"
      else
        dt_die "no ${svc} image in the rendered ${overlay}; does 'kubectl kustomize ${overlay}' build?"
      fi
    fi
    case "${ref}" in
      *@sha256:*) dt_die "overlays/development/${svc} pins ${svc} by digest (${ref}); a locally built image cannot match a digest, use a tag in development" ;;
    esac
    DT_IMAGES["${svc}"]="${ref}"
  done
}

# Reads rendered YAML on stdin and prints the first image whose last path
# segment (without tag) is the service name.
dt_image_for() {
  local svc="$1"
  sed -n 's/^[[:space:]-]*image:[[:space:]]*["'\'']\{0,1\}\([^"'\'' ]*\).*$/\1/p' |
    awk -v svc="${svc}" '{ name = $0; sub(/[@:][^\/]*$/, "", name); n = split(name, parts, "/"); if (parts[n] == svc) { print $0; exit } }'
}

# Builds one service image from services/<svc>/Dockerfile (the workspace is
# the build context) and loads it into the kind nodes.
dt_build_and_load() {
  local svc="$1" ref="${DT_IMAGES[$1]}"
  dt_run "${DT_RUNTIME}" build -f "${DT_REPO_ROOT}/services/${svc}/Dockerfile" -t "${ref}" "${DT_REPO_ROOT}"
  if [[ "${DT_RUNTIME}" == podman ]]; then
    local archive
    archive="$(dt_state_dir)/images/${svc}.tar"
    dt_run mkdir -p "$(dirname "${archive}")"
    dt_run podman save -o "${archive}" "${ref}"
    dt_kind load image-archive "${archive}" --name "${DT_CLUSTER_NAME}"
  else
    dt_kind load docker-image "${ref}" --name "${DT_CLUSTER_NAME}"
  fi
}

# Steps `cluster`, `calico` and `wait-ready`: the kind cluster of
# kind-config.yaml (created unless it exists), Calico for NetworkPolicy
# enforcement as in the cloud, then every node Ready.
dt_create_cluster_with_calico() {
  dt_step cluster "create kind cluster ${DT_CLUSTER_NAME} (default CNI disabled)"
  if dt_cluster_exists; then
    dt_info "kind cluster ${DT_CLUSTER_NAME} already exists; reusing it"
  else
    # --wait 0s: nodes cannot become Ready before a CNI is installed.
    dt_kind create cluster --name "${DT_CLUSTER_NAME}" --config "${DT_LOCAL_DIR}/kind-config.yaml" --wait 0s
  fi

  dt_step calico "install Calico ${DT_CALICO_VERSION} (NetworkPolicy enforcement)"
  dt_kubectl apply --server-side --force-conflicts \
    -f "https://raw.githubusercontent.com/projectcalico/calico/${DT_CALICO_VERSION}/manifests/calico.yaml"
  dt_kubectl rollout status -n kube-system daemonset/calico-node --timeout=5m

  dt_step wait-ready "wait for every node to be Ready"
  dt_kubectl wait --for=condition=Ready nodes --all --timeout=5m
}

# Builds and loads every service image (dt_resolve_images first).
dt_load_images() {
  local svc
  for svc in "${DT_SERVICES[@]}"; do
    dt_build_and_load "${svc}"
  done
}

# Flux's controllers and CRDs exactly as git pins them (clusters/flux-system),
# then waits until they run.
dt_install_flux() {
  dt_kubectl apply --server-side --force-conflicts --field-manager=dt-local \
    -k "${DT_REPO_ROOT}/clusters/flux-system"
  dt_kubectl wait -n flux-system --for=condition=Available deployment --all --timeout=5m
}

# Starts `kubectl port-forward` of Service ns/svc to localhost:lport in the
# background, its pid in the state dir (dt_stop_port_forwards ends it).
dt_port_forward() {
  local ns="$1" svc="$2" lport="$3" rport="$4" what="$5" dir
  dir="$(dt_state_dir)/port-forwards"
  dt_run mkdir -p "${dir}"
  dt_print_cmd nohup kubectl --context "$(dt_context)" port-forward -n "${ns}" "svc/${svc}" "${lport}:${rport}"
  if [[ "${DT_DRY_RUN}" != 1 ]]; then
    nohup kubectl --context "$(dt_context)" port-forward -n "${ns}" "svc/${svc}" "${lport}:${rport}" \
      >"${dir}/${svc}.log" 2>&1 &
    printf '%s' "$!" >"${dir}/${svc}.pid"
  fi
  dt_info "  localhost:${lport} -> ${ns}/${svc}:${rport} (${what})"
}

# Stops the port-forwards a previous setup.sh started (pid files in the state
# dir). Only pids we recorded are touched.
dt_stop_port_forwards() {
  local dir pidfile pid
  dir="$(dt_state_dir)/port-forwards"
  [[ -d "${dir}" ]] || return 0
  for pidfile in "${dir}"/*.pid; do
    [[ -e "${pidfile}" ]] || continue
    pid="$(<"${pidfile}")"
    if [[ "${pid}" =~ ^[0-9]+$ ]] && kill -0 "${pid}" 2>/dev/null; then
      dt_run kill "${pid}"
    fi
    dt_run rm -f "${pidfile}"
  done
}

# Parses the flags every script has. Sets DT_DRY_RUN / DT_CLUSTER_NAME and
# puts what it did not consume into DT_ARGS. Unknown --flags are an error.
DT_ARGS=()
dt_parse_common() {
  local usage_fn="$1"
  shift
  while (($# > 0)); do
    case "$1" in
      -h | --help)
        "${usage_fn}"
        exit 0
        ;;
      -n | --dry-run) DT_DRY_RUN=1 ;;
      --name)
        (($# >= 2)) || dt_usage_error "--name needs a cluster name"
        DT_CLUSTER_NAME="$2"
        shift
        ;;
      --name=*) DT_CLUSTER_NAME="${1#--name=}" ;;
      --) ;;
      -*) DT_ARGS+=("$1") ;;
      *) DT_ARGS+=("$1") ;;
    esac
    shift
  done
  if [[ ! "${DT_CLUSTER_NAME}" =~ ^[a-z0-9]([-a-z0-9]*[a-z0-9])?$ ]]; then
    dt_usage_error "cluster name '${DT_CLUSTER_NAME}' is not a valid kind cluster name"
  fi
  if [[ "${DT_DRY_RUN}" == 1 ]]; then
    dt_info "dry run: printing the commands that change something, running none of them"
  fi
}
