# What clients outside the cluster connect to: the environment's public DNS
# zone, and for every meeting-controller and media-handler replica a static
# external address and the DNS name that points at it. Each replica is a
# StatefulSet ordinal with its own UDP LoadBalancer Service in git
# (overlays/<env>/<service>/public.yaml), which takes its address by name
# (networking.gke.io/load-balancer-ip-addresses) and advertises the name
# (dark-tower.io/public-name), so a client reaches the one replica that holds
# its meeting. The names and the counts here are checked against the rendered
# manifests by tools/env-tests (terraform.rs).
#
# cert-manager proves the environment's names to Let's Encrypt with DNS-01
# records in this zone: it gets its own identity, allowed to edit this zone
# only (overlays/<env>/issuer.yaml names the zone, and the cert-manager
# HelmRelease of the environment annotates its service account).

locals {
  labels = merge(
    {
      environment = var.environment
      part-of     = "dark-tower"
      managed-by  = "terraform"
    },
    var.labels,
  )

  # "meeting-controller-0", "meeting-controller-1", ..., "media-handler-0", ...
  ordinals = toset(flatten([
    for service, count in var.replicas : [for i in range(count) : "${service}-${i}"]
  ]))
}

resource "google_dns_managed_zone" "public" {
  project     = var.project_id
  name        = "dark-tower-${var.environment}-public"
  dns_name    = "${var.domain}."
  description = "Public names of the Dark Tower ${var.environment} environment (delegated from the parent zone with name_servers)."
  visibility  = "public"
  labels      = local.labels

  dnssec_config {
    state = "on"

    default_key_specs {
      algorithm  = "rsasha256"
      key_length = 2048
      key_type   = "keySigning"
    }

    default_key_specs {
      algorithm  = "rsasha256"
      key_length = 1024
      key_type   = "zoneSigning"
    }
  }
}

resource "google_compute_address" "media" {
  for_each = local.ordinals

  project      = var.project_id
  name         = "dark-tower-${var.environment}-${each.key}"
  region       = var.region
  address_type = "EXTERNAL"
  network_tier = "PREMIUM"
  description  = "UDP LoadBalancer of ${each.key} (Service ${each.key} in namespace dark-tower)."
  labels       = local.labels
}

resource "google_dns_record_set" "media" {
  for_each = local.ordinals

  project      = var.project_id
  managed_zone = google_dns_managed_zone.public.name
  name         = "${each.key}.media.${var.domain}."
  type         = "A"
  # Short: a replaced address (a recreated Service keeps its reserved one,
  # but a region move does not) is seen within minutes.
  ttl     = 300
  rrdatas = [google_compute_address.media[each.key].address]
}

# The HTTPS API: the Gateway's load balancer takes this address
# (base/gateway/envoyproxy.yaml names it), and api.<domain> points at it.
resource "google_compute_address" "gateway" {
  project      = var.project_id
  name         = "dark-tower-${var.environment}-gateway"
  region       = var.region
  address_type = "EXTERNAL"
  network_tier = "PREMIUM"
  description  = "The Gateway dark-tower (Envoy Gateway's LoadBalancer Service) of ${var.environment}."
  labels       = local.labels
}

resource "google_dns_record_set" "api" {
  project      = var.project_id
  managed_zone = google_dns_managed_zone.public.name
  name         = "api.${var.domain}."
  type         = "A"
  ttl          = 300
  rrdatas      = [google_compute_address.gateway.address]
}

resource "google_service_account" "cert_manager" {
  count = var.cert_manager_dns01 ? 1 : 0

  project      = var.project_id
  account_id   = "cert-manager-${var.environment}"
  display_name = "cert-manager DNS-01 (${var.environment})"
}

resource "google_dns_managed_zone_iam_member" "cert_manager" {
  count = var.cert_manager_dns01 ? 1 : 0

  project      = var.project_id
  managed_zone = google_dns_managed_zone.public.name
  role         = "roles/dns.admin"
  member       = "serviceAccount:${google_service_account.cert_manager[0].email}"
}

resource "google_service_account_iam_member" "cert_manager_workload_identity" {
  count = var.cert_manager_dns01 ? 1 : 0

  service_account_id = google_service_account.cert_manager[0].name
  role               = "roles/iam.workloadIdentityUser"
  member             = "serviceAccount:${var.workload_identity_pool}[${var.cert_manager_service_account}]"
}
