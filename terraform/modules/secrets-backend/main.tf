# Where each cluster's SOPS age private key lives: one Secret Manager secret
# per environment, encrypted with a customer-managed KMS key, readable only
# by that cluster's Flux kustomize-controller (through Workload Identity).
# Terraform creates the empty secret; the key itself is added out of band
# (see terraform/README.md), so no key material ever passes through code or
# state. The module also creates the KMS key that encrypts Kubernetes Secrets
# in the cluster's etcd.

data "google_project" "this" {
  project_id = var.project_id
}

locals {
  labels = merge(
    {
      environment = var.environment
      part-of     = "dark-tower"
      managed-by  = "terraform"
    },
    var.labels,
  )
  gke_agent     = "serviceAccount:service-${data.google_project.this.number}@container-engine-robot.iam.gserviceaccount.com"
  secrets_agent = "serviceAccount:service-${data.google_project.this.number}@gcp-sa-secretmanager.iam.gserviceaccount.com"
}

resource "google_kms_key_ring" "this" {
  project  = var.project_id
  name     = "dark-tower-${var.environment}"
  location = var.region
}

resource "google_kms_crypto_key" "age_key_secret" {
  name            = "sops-age-key"
  key_ring        = google_kms_key_ring.this.id
  rotation_period = var.key_rotation_period
  labels          = local.labels

  lifecycle {
    prevent_destroy = true
  }
}

resource "google_kms_crypto_key" "etcd_secrets" {
  name            = "gke-etcd-secrets"
  key_ring        = google_kms_key_ring.this.id
  rotation_period = var.key_rotation_period
  labels          = local.labels

  lifecycle {
    prevent_destroy = true
  }
}

resource "google_project_service_identity" "secretmanager" {
  provider = google-beta
  project  = var.project_id
  service  = "secretmanager.googleapis.com"
}

resource "google_kms_crypto_key_iam_member" "secretmanager_uses_age_key" {
  crypto_key_id = google_kms_crypto_key.age_key_secret.id
  role          = "roles/cloudkms.cryptoKeyEncrypterDecrypter"
  member        = local.secrets_agent

  depends_on = [google_project_service_identity.secretmanager]
}

resource "google_kms_crypto_key_iam_member" "gke_uses_etcd_key" {
  crypto_key_id = google_kms_crypto_key.etcd_secrets.id
  role          = "roles/cloudkms.cryptoKeyEncrypterDecrypter"
  member        = local.gke_agent
}

resource "google_secret_manager_secret" "age_key" {
  project   = var.project_id
  secret_id = "sops-age-key-${var.environment}"
  labels    = local.labels

  replication {
    user_managed {
      replicas {
        location = var.region
        customer_managed_encryption {
          kms_key_name = google_kms_crypto_key.age_key_secret.id
        }
      }
    }
  }

  depends_on = [google_kms_crypto_key_iam_member.secretmanager_uses_age_key]
}

# The identity Flux's kustomize-controller assumes to read the key.
resource "google_service_account" "flux" {
  project      = var.project_id
  account_id   = "flux-sops-${var.environment}"
  display_name = "Flux SOPS decryption (${var.environment})"
}

resource "google_secret_manager_secret_iam_member" "flux_reads_age_key" {
  project   = var.project_id
  secret_id = google_secret_manager_secret.age_key.secret_id
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${google_service_account.flux.email}"
}
