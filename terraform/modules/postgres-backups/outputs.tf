output "bucket" {
  description = "Name of the backup bucket (the ObjectStore's destinationPath is gs://<bucket>/<cluster>)."
  value       = google_storage_bucket.backups.name
}

output "service_account" {
  description = "Cloud service account the CloudNativePG instances assume (iam.gke.io/gcp-service-account on the Cluster's service account)."
  value       = google_service_account.backups.email
}
