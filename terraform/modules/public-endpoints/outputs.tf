output "zone_name" {
  description = "Cloud DNS zone of the environment's public names (cert-manager's DNS-01 records go here too)."
  value       = google_dns_managed_zone.public.name
}

output "name_servers" {
  description = "Name servers to delegate the domain to from its parent zone."
  value       = google_dns_managed_zone.public.name_servers
}

output "media_addresses" {
  description = "Each replica's public name and its reserved address."
  value       = { for ordinal, record in google_dns_record_set.media : trimsuffix(record.name, ".") => google_compute_address.media[ordinal].address }
}

output "cert_manager_service_account" {
  description = "Cloud service account cert-manager assumes for DNS-01 (iam.gke.io/gcp-service-account on its Kubernetes service account), or null."
  value       = var.cert_manager_dns01 ? google_service_account.cert_manager[0].email : null
}

output "api_address" {
  description = "The Gateway's reserved address, which api.<domain> points at."
  value       = google_compute_address.gateway.address
}
