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
