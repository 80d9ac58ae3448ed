# A private, regional GKE cluster with Calico NetworkPolicy enforcement (the
# same CNI the local kind cluster runs), Workload Identity, shielded COS nodes
# and application-layer Secret encryption. The interface (variables.tf,
# outputs.tf) says nothing GKE-specific beyond the machine types, so an EKS or
# AKS implementation can sit behind the same module name.

locals {
  labels = merge(
    {
      environment = var.environment
      part-of     = "dark-tower"
      managed-by  = "terraform"
    },
    var.labels,
  )
}

resource "google_compute_network" "this" {
  project                 = var.project_id
  name                    = "${var.name}-vpc"
  auto_create_subnetworks = false
  routing_mode            = "REGIONAL"
}

resource "google_compute_subnetwork" "nodes" {
  project                  = var.project_id
  name                     = "${var.name}-nodes"
  region                   = var.region
  network                  = google_compute_network.this.id
  ip_cidr_range            = var.nodes_cidr
  private_ip_google_access = true

  secondary_ip_range {
    range_name    = "pods"
    ip_cidr_range = var.pods_cidr
  }

  secondary_ip_range {
    range_name    = "services"
    ip_cidr_range = var.services_cidr
  }

  log_config {
    aggregation_interval = "INTERVAL_5_MIN"
    flow_sampling        = 0.5
    metadata             = "INCLUDE_ALL_METADATA"
  }
}

# Explicit firewall policy instead of relying on defaults: everything not
# allowed is denied (and logged); GKE adds its own higher-priority rules for
# the control plane and for LoadBalancer Services (the MC/MH UDP ports).
resource "google_compute_firewall" "deny_all_ingress" {
  project   = var.project_id
  name      = "${var.name}-deny-all-ingress"
  network   = google_compute_network.this.id
  direction = "INGRESS"
  priority  = 65534

  deny {
    protocol = "all"
  }

  source_ranges = ["0.0.0.0/0"]

  log_config {
    metadata = "INCLUDE_ALL_METADATA"
  }
}

# Google's load-balancer health checkers probe the nodes.
resource "google_compute_firewall" "allow_health_checks" {
  project   = var.project_id
  name      = "${var.name}-allow-health-checks"
  network   = google_compute_network.this.id
  direction = "INGRESS"
  priority  = 1000

  allow {
    protocol = "tcp"
  }

  source_ranges = ["35.191.0.0/16", "130.211.0.0/22"]

  log_config {
    metadata = "INCLUDE_ALL_METADATA"
  }
}

# The private control plane calls the platform's admission webhooks on the
# nodes. GKE's own rule opens only 443 and 10250 from it: the webhooks on
# other ports (Linkerd's proxy injector and validators 8443/9443,
# CloudNativePG 9443, trust-manager 6443) would time out, and with
# failurePolicy Fail nothing they guard could be created.
resource "google_compute_firewall" "allow_control_plane_webhooks" {
  project   = var.project_id
  name      = "${var.name}-allow-control-plane-webhooks"
  network   = google_compute_network.this.id
  direction = "INGRESS"
  priority  = 1000

  allow {
    protocol = "tcp"
    ports    = var.control_plane_webhook_ports
  }

  source_ranges           = [var.control_plane_cidr]
  target_service_accounts = [google_service_account.nodes.email]

  log_config {
    metadata = "INCLUDE_ALL_METADATA"
  }
}

# Private nodes reach container registries and the platform's Helm
# repositories through Cloud NAT.
resource "google_compute_router" "nat" {
  project = var.project_id
  name    = "${var.name}-nat"
  region  = var.region
  network = google_compute_network.this.id
}

resource "google_compute_router_nat" "nat" {
  project                            = var.project_id
  name                               = "${var.name}-nat"
  router                             = google_compute_router.nat.name
  region                             = var.region
  nat_ip_allocate_option             = "AUTO_ONLY"
  source_subnetwork_ip_ranges_to_nat = "ALL_SUBNETWORKS_ALL_IP_RANGES"

  log_config {
    enable = true
    filter = "ERRORS_ONLY"
  }
}

# Google APIs at a fixed, small address range: every *.googleapis.com name in
# this VPC resolves to private.googleapis.com (199.36.153.8/30), reached
# through Private Google Access. Pods that talk to Google APIs (the database's
# backups to Cloud Storage) then need egress to that /30 only, not to the
# internet (overlays/<env>/postgres and base/postgres/backups).
resource "google_dns_managed_zone" "googleapis" {
  project     = var.project_id
  name        = "${var.name}-googleapis"
  dns_name    = "googleapis.com."
  description = "Google APIs through private.googleapis.com (Private Google Access)"
  visibility  = "private"
  labels      = local.labels

  private_visibility_config {
    networks {
      network_url = google_compute_network.this.id
    }
  }
}

resource "google_dns_record_set" "googleapis_private" {
  project      = var.project_id
  managed_zone = google_dns_managed_zone.googleapis.name
  name         = "private.googleapis.com."
  type         = "A"
  ttl          = 300
  rrdatas      = ["199.36.153.8", "199.36.153.9", "199.36.153.10", "199.36.153.11"]
}

resource "google_dns_record_set" "googleapis_wildcard" {
  project      = var.project_id
  managed_zone = google_dns_managed_zone.googleapis.name
  name         = "*.googleapis.com."
  type         = "CNAME"
  ttl          = 300
  rrdatas      = ["private.googleapis.com."]
}

# Nodes run as a dedicated, least-privilege service account, never the
# project's default compute account.
resource "google_service_account" "nodes" {
  project      = var.project_id
  account_id   = "${var.name}-nodes"
  display_name = "GKE nodes of ${var.name}"
}

resource "google_project_iam_member" "nodes" {
  for_each = toset([
    "roles/logging.logWriter",
    "roles/monitoring.metricWriter",
    "roles/monitoring.viewer",
    "roles/stackdriver.resourceMetadata.writer",
  ])

  project = var.project_id
  role    = each.value
  member  = "serviceAccount:${google_service_account.nodes.email}"
}

resource "google_container_cluster" "this" {
  provider = google

  project  = var.project_id
  name     = var.name
  location = var.region

  network    = google_compute_network.this.id
  subnetwork = google_compute_subnetwork.nodes.id

  # Node pools are managed separately (system pool below, one per heavy
  # service in the environments); the default pool only bootstraps.
  remove_default_node_pool = true
  initial_node_count       = 1

  deletion_protection = var.deletion_protection
  resource_labels     = local.labels

  release_channel {
    channel = var.release_channel
  }

  networking_mode = "VPC_NATIVE"
  ip_allocation_policy {
    cluster_secondary_range_name  = "pods"
    services_secondary_range_name = "services"
  }

  private_cluster_config {
    enable_private_nodes    = true
    enable_private_endpoint = false
    master_ipv4_cidr_block  = var.control_plane_cidr

    master_global_access_config {
      enabled = false
    }
  }

  master_authorized_networks_config {
    dynamic "cidr_blocks" {
      for_each = var.authorized_networks
      content {
        cidr_block   = cidr_blocks.value.cidr_block
        display_name = cidr_blocks.value.display_name
      }
    }
  }

  # Calico enforces NetworkPolicy, as in the kind cluster of tools/local.
  network_policy {
    enabled  = true
    provider = "CALICO"
  }

  addons_config {
    network_policy_config {
      disabled = false
    }
    http_load_balancing {
      disabled = false
    }
  }

  workload_identity_config {
    workload_pool = "${var.project_id}.svc.id.goog"
  }

  database_encryption {
    state    = "ENCRYPTED"
    key_name = var.secrets_encryption_key
  }

  dynamic "authenticator_groups_config" {
    for_each = var.rbac_security_group == null ? [] : [var.rbac_security_group]
    content {
      security_group = authenticator_groups_config.value
    }
  }

  binary_authorization {
    evaluation_mode = "PROJECT_SINGLETON_POLICY_ENFORCE"
  }

  enable_shielded_nodes       = true
  enable_legacy_abac          = false
  enable_intranode_visibility = true

  master_auth {
    client_certificate_config {
      issue_client_certificate = false
    }
  }

  logging_config {
    enable_components = ["SYSTEM_COMPONENTS", "WORKLOADS"]
  }

  monitoring_config {
    enable_components = ["SYSTEM_COMPONENTS"]
  }

  maintenance_policy {
    recurring_window {
      start_time = "2024-01-06T02:00:00Z"
      end_time   = "2024-01-06T06:00:00Z"
      recurrence = "FREQ=WEEKLY;BYDAY=SA,SU"
    }
  }

  # Only the bootstrap pool uses this; it is removed right after creation.
  node_config {
    image_type      = "COS_CONTAINERD"
    service_account = google_service_account.nodes.email
    oauth_scopes    = ["https://www.googleapis.com/auth/cloud-platform"]

    workload_metadata_config {
      mode = "GKE_METADATA"
    }

    shielded_instance_config {
      enable_secure_boot          = true
      enable_integrity_monitoring = true
    }

    metadata = {
      disable-legacy-endpoints = "true"
    }
  }

  lifecycle {
    # The bootstrap node_config is irrelevant once the default pool is gone.
    ignore_changes = [node_config, initial_node_count]
  }
}

module "system_pool" {
  source = "../node-pool"

  project_id      = var.project_id
  cluster_id      = google_container_cluster.this.id
  location        = var.region
  name            = "system"
  machine_type    = var.system_pool.machine_type
  min_node_count  = var.system_pool.min_node_count
  max_node_count  = var.system_pool.max_node_count
  disk_size_gb    = var.system_pool.disk_size_gb
  spot            = false
  service_account = google_service_account.nodes.email
  node_labels = {
    "dark-tower.io/node-pool" = "system"
  }
  taints          = []
  workload        = null
  resource_labels = local.labels
}
