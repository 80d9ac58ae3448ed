# Where an environment's PostgreSQL base backups and WAL archive go: one GCS
# bucket, and the identity the CloudNativePG instances' barman-cloud sidecar
# assumes to write there (Workload Identity: the Kubernetes service account
# the operator makes for the Cluster, named after it). The bucket is
# encrypted with its own KMS key, versioned, never public, with uniform
# access and access logs; barman-cloud's retention policy (the ObjectStore's
# retentionPolicy in git) deletes expired backups.

# Cloud Storage's service agent, which encrypts the buckets with the KMS key. Read through
# this data source, which creates the agent on a new project (it does not exist until first
# asked for), rather than spelled from the project number.
data "google_storage_project_service_account" "gcs" {
  project = var.project_id
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
  storage_agent = "serviceAccount:${data.google_storage_project_service_account.gcs.email_address}"
}

resource "google_kms_crypto_key" "backups" {
  name            = "postgres-backups"
  key_ring        = var.key_ring_id
  rotation_period = var.key_rotation_period
  labels          = local.labels

  lifecycle {
    prevent_destroy = true
  }
}

resource "google_kms_crypto_key_iam_member" "storage_uses_backup_key" {
  crypto_key_id = google_kms_crypto_key.backups.id
  role          = "roles/cloudkms.cryptoKeyEncrypterDecrypter"
  member        = local.storage_agent
}

# Access logs of the backup bucket (who read or wrote a backup).
resource "google_storage_bucket" "access_logs" {
  #checkov:skip=CKV_GCP_62:this is the access-log bucket itself; logging it to itself is refused (CKV_GCP_63) and to a third bucket would only move the question
  project                     = var.project_id
  name                        = "${var.project_id}-postgres-backups-logs"
  location                    = var.region
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = false
  labels                      = local.labels

  versioning {
    enabled = true
  }

  encryption {
    default_kms_key_name = google_kms_crypto_key.backups.id
  }

  lifecycle_rule {
    condition {
      age = var.log_retention_days
    }
    action {
      type = "Delete"
    }
  }

  depends_on = [google_kms_crypto_key_iam_member.storage_uses_backup_key]
}

# GCS writes usage logs as this group (Cloud Storage's documented requirement).
resource "google_storage_bucket_iam_member" "access_logs_writer" {
  bucket = google_storage_bucket.access_logs.name
  role   = "roles/storage.objectCreator"
  member = "group:cloud-storage-analytics@google.com"
}

resource "google_storage_bucket" "backups" {
  project                     = var.project_id
  name                        = "${var.project_id}-postgres-backups"
  location                    = var.region
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = false
  # The window barman-cloud keeps, for whoever looks at the bucket.
  labels = merge(local.labels, { backup-retention-days = tostring(var.retention_days) })

  versioning {
    enabled = true
  }

  encryption {
    default_kms_key_name = google_kms_crypto_key.backups.id
  }

  logging {
    log_bucket = google_storage_bucket.access_logs.name
  }

  # barman-cloud's retention policy alone decides which backups go: it keeps
  # the base backup the window still needs however old it is (an age rule
  # here would delete the last good base backup if scheduled backups
  # stopped for a while, and nothing could be restored). What barman-cloud
  # deletes or overwrites stays a week as a noncurrent version, then goes.
  lifecycle_rule {
    condition {
      days_since_noncurrent_time = 7
      with_state                 = "ARCHIVED"
    }
    action {
      type = "Delete"
    }
  }

  lifecycle {
    prevent_destroy = true
  }

  depends_on = [google_kms_crypto_key_iam_member.storage_uses_backup_key]
}

# The identity of the CloudNativePG instances' backup sidecar.
resource "google_service_account" "backups" {
  project      = var.project_id
  account_id   = "postgres-backups-${var.environment}"
  display_name = "PostgreSQL backups (${var.environment})"
}

resource "google_service_account_iam_member" "backups_workload_identity" {
  service_account_id = google_service_account.backups.name
  role               = "roles/iam.workloadIdentityUser"
  member             = "serviceAccount:${var.workload_identity_pool}[${var.kubernetes_service_account}]"
}

# barman-cloud checks the bucket before it writes (storage.buckets.get),
# which objectAdmin does not grant: without this every WAL archive and
# backup fails with 403 while the Cluster still reports Ready.
resource "google_storage_bucket_iam_member" "backups_bucket_read" {
  bucket = google_storage_bucket.backups.name
  role   = "roles/storage.legacyBucketReader"
  member = "serviceAccount:${google_service_account.backups.email}"
}

# Read, write and delete objects (retention removes expired backups), in
# this bucket only.
resource "google_storage_bucket_iam_member" "backups_write" {
  bucket = google_storage_bucket.backups.name
  role   = "roles/storage.objectAdmin"
  member = "serviceAccount:${google_service_account.backups.email}"
}
