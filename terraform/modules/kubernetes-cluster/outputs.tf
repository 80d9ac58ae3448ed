output "name" {
  description = "Cluster name."
  value       = google_container_cluster.this.name
}

output "id" {
  description = "Cluster id, for node pools attached to it."
  value       = google_container_cluster.this.id
}

output "location" {
  description = "Region of the cluster."
  value       = google_container_cluster.this.location
}

output "endpoint" {
  description = "Kubernetes API endpoint."
  value       = google_container_cluster.this.endpoint
  sensitive   = true
}

output "ca_certificate" {
  description = "Base64 cluster CA certificate."
  value       = google_container_cluster.this.master_auth[0].cluster_ca_certificate
  sensitive   = true
}

output "workload_identity_pool" {
  description = "Workload Identity pool (<project>.svc.id.goog) for binding Kubernetes service accounts to cloud identities. Read from the cluster: the pool exists only once the cluster does, so bindings made from this output wait for it."
  value       = google_container_cluster.this.workload_identity_config[0].workload_pool
}

output "node_service_account" {
  description = "Service account the nodes run as; dedicated pools reuse it."
  value       = google_service_account.nodes.email
}

output "network" {
  description = "VPC network id."
  value       = google_compute_network.this.id
}
