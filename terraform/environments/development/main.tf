# The development environment: one GKE cluster, a dedicated node pool for each
# heavy service (meeting-controller, media-handler) sized from ADR-0012, and
# the Secret Manager entry that holds this cluster's SOPS age key.

provider "google" {
  project = var.project_id
  region  = var.region
}

provider "google-beta" {
  project = var.project_id
  region  = var.region
}

locals {
  environment = "development"

  # ADR-0012 resource sizing, per pod. The dedicated pools refuse machine
  # types on which one pod at these limits does not fit.
  adr_0012_sizing = {
    meeting-controller = {
      cpu_request_millicores = 2000
      cpu_limit_millicores   = 4000
      memory_request_mib     = 6144
      memory_limit_mib       = 8192
    }
    media-handler = {
      cpu_request_millicores = 4000
      cpu_limit_millicores   = 8000
      memory_request_mib     = 12288
      memory_limit_mib       = 16384
    }
  }
}

module "secrets" {
  source = "../../modules/secrets-backend"

  project_id  = var.project_id
  environment = local.environment
  region      = var.region
}

# The public names and addresses of every meeting-controller and media-handler
# replica (overlays/development/<service>/public.yaml): one UDP LoadBalancer per
# StatefulSet ordinal, as many as the overlays' replicas.
module "public_endpoints" {
  source = "../../modules/public-endpoints"

  project_id  = var.project_id
  environment = local.environment
  region      = var.region
  domain      = "dev.dark-tower.example"
  # Development's certificates come from its own CA, not ACME.
  cert_manager_dns01 = false
  replicas = {
    meeting-controller = 1
    media-handler      = 1
  }

  # Workload Identity bindings wait for the cluster that creates the pool.
  workload_identity_pool = module.cluster.workload_identity_pool
}

module "cluster" {
  source = "../../modules/kubernetes-cluster"

  project_id             = var.project_id
  environment            = local.environment
  name                   = "dark-tower-${local.environment}"
  region                 = var.region
  release_channel        = "REGULAR"
  nodes_cidr             = "10.10.0.0/20"
  pods_cidr              = "10.20.0.0/14"
  services_cidr          = "10.24.0.0/20"
  control_plane_cidr     = "172.16.0.0/28"
  authorized_networks    = var.authorized_networks
  rbac_security_group    = var.rbac_security_group
  secrets_encryption_key = module.secrets.etcd_encryption_key
  deletion_protection    = false
  system_pool            = var.system_pool
}

# Flux's kustomize-controller reads the age key as the secrets module's service account
# (Workload Identity). The binding names the cluster's pool, so it is made once the cluster
# exists; it lives here, not in the secrets module, because the cluster needs that module's
# etcd key first.
resource "google_service_account_iam_member" "flux_workload_identity" {
  service_account_id = module.secrets.flux_service_account_name
  role               = "roles/iam.workloadIdentityUser"
  member             = "serviceAccount:${module.cluster.workload_identity_pool}[flux-system/kustomize-controller]"
}

moved {
  from = module.secrets.google_service_account_iam_member.flux_workload_identity
  to   = google_service_account_iam_member.flux_workload_identity
}

module "meeting_controller_pool" {
  source = "../../modules/node-pool"

  project_id      = var.project_id
  cluster_id      = module.cluster.id
  location        = var.region
  name            = "meeting-controller"
  machine_type    = var.meeting_controller_pool.machine_type
  min_node_count  = var.meeting_controller_pool.min_node_count
  max_node_count  = var.meeting_controller_pool.max_node_count
  spot            = true
  service_account = module.cluster.node_service_account
  workload        = local.adr_0012_sizing["meeting-controller"]
  node_labels = {
    "dark-tower.io/node-pool" = "meeting-controller"
  }
  taints = [{
    key    = "dark-tower.io/dedicated"
    value  = "meeting-controller"
    effect = "NO_SCHEDULE"
  }]
}

module "media_handler_pool" {
  source = "../../modules/node-pool"

  project_id      = var.project_id
  cluster_id      = module.cluster.id
  location        = var.region
  name            = "media-handler"
  machine_type    = var.media_handler_pool.machine_type
  min_node_count  = var.media_handler_pool.min_node_count
  max_node_count  = var.media_handler_pool.max_node_count
  spot            = true
  service_account = module.cluster.node_service_account
  workload        = local.adr_0012_sizing["media-handler"]
  node_labels = {
    "dark-tower.io/node-pool" = "media-handler"
  }
  taints = [{
    key    = "dark-tower.io/dedicated"
    value  = "media-handler"
    effect = "NO_SCHEDULE"
  }]
}
