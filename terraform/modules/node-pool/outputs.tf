output "name" {
  description = "Node pool name."
  value       = google_container_node_pool.this.name
}

output "allocatable" {
  description = "Estimated CPU (millicores) and memory (MiB) per node left for the pool's own pods."
  value = {
    cpu_millicores = local.allocatable_cpu_m
    memory_mib     = local.allocatable_memory_mib
  }
}

output "pods_per_node" {
  description = "How many pods of the dedicated workload fit on one node at their requests (null for a shared pool)."
  value       = local.pods_per_node
}
