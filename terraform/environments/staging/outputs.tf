output "cluster_name" {
  description = "Name of the staging cluster (gcloud container clusters get-credentials)."
  value       = module.cluster.name
}

output "cluster_location" {
  description = "Region of the staging cluster."
  value       = module.cluster.location
}

output "age_key_secret_id" {
  description = "Secret Manager secret holding the staging cluster's SOPS age key."
  value       = module.secrets.age_key_secret_id
}

output "flux_service_account" {
  description = "Cloud service account to annotate flux-system/kustomize-controller with."
  value       = module.secrets.flux_service_account
}

output "meeting_controller_pods_per_node" {
  description = "meeting-controller pods that fit on one node of its pool, at ADR-0012 requests."
  value       = module.meeting_controller_pool.pods_per_node
}

output "media_handler_pods_per_node" {
  description = "media-handler pods that fit on one node of its pool, at ADR-0012 requests."
  value       = module.media_handler_pool.pods_per_node
}

output "postgres_backup_bucket" {
  description = "GCS bucket of the staging PostgreSQL backups and WAL archive."
  value       = module.postgres_backups.bucket
}

output "postgres_backup_service_account" {
  description = "Cloud service account of the staging PostgreSQL instances (Workload Identity)."
  value       = module.postgres_backups.service_account
}

output "public_name_servers" {
  description = "Name servers of the staging public zone, to delegate staging.dark-tower.example to."
  value       = module.public_endpoints.name_servers
}

output "media_addresses" {
  description = "Public name and reserved address of every meeting-controller and media-handler replica."
  value       = module.public_endpoints.media_addresses
}
