output "age_key_secret_id" {
  description = "Secret Manager secret that holds the cluster's SOPS age private key (add the value out of band)."
  value       = google_secret_manager_secret.age_key.id
}

output "flux_service_account" {
  description = "Cloud service account for Flux's kustomize-controller (annotate the Kubernetes service account with it)."
  value       = google_service_account.flux.email
}

output "flux_service_account_name" {
  description = "Resource name of Flux's cloud service account, for the Workload Identity binding the environment makes once the cluster (and its pool) exists."
  value       = google_service_account.flux.name
}

output "etcd_encryption_key" {
  description = "KMS key for the cluster's application-layer Secret encryption."
  value       = google_kms_crypto_key.etcd_secrets.id
  # The cluster is created with this key: only once GKE's agent may use it.
  depends_on = [google_kms_crypto_key_iam_member.gke_uses_etcd_key]
}

output "key_ring_id" {
  description = "KMS key ring of the environment, for the keys of other modules (backups)."
  value       = google_kms_key_ring.this.id
}
