# One autoscaled node pool. Dedicated pools (meeting-controller,
# media-handler) carry a taint and a label so that only their service lands
# there, and check that one pod of that service at its limits fits on a node.

locals {
  # vCPUs and memory (MiB) of the machine types we use.
  machine_shapes = {
    "e2-standard-2"  = { vcpus = 2, memory_mib = 8192 }
    "e2-standard-4"  = { vcpus = 4, memory_mib = 16384 }
    "e2-standard-8"  = { vcpus = 8, memory_mib = 32768 }
    "e2-standard-16" = { vcpus = 16, memory_mib = 65536 }
    "n2-standard-4"  = { vcpus = 4, memory_mib = 16384 }
    "n2-standard-8"  = { vcpus = 8, memory_mib = 32768 }
    "n2-standard-16" = { vcpus = 16, memory_mib = 65536 }
    "n2-standard-32" = { vcpus = 32, memory_mib = 131072 }
    "c2-standard-8"  = { vcpus = 8, memory_mib = 32768 }
    "c2-standard-16" = { vcpus = 16, memory_mib = 65536 }
    "c2-standard-30" = { vcpus = 30, memory_mib = 122880 }
  }
  shape = local.machine_shapes[var.machine_type]

  # GKE's kube/system reservation: 6% of the first core, 1% of the second,
  # 0.5% of the next two, 0.25% of the rest.
  reserved_cpu_m = ceil(
    60 + (local.shape.vcpus > 1 ? 10 : 0) + 5 * min(max(local.shape.vcpus - 2, 0), 2) + 2.5 * max(local.shape.vcpus - 4, 0)
  )
  # Memory: 25% of the first 4 GiB, 20% of the next 4, 10% of the next 8,
  # 6% of the next 112, 2% above 128 GiB, plus the 100 MiB eviction threshold.
  reserved_memory_mib = ceil(
    0.25 * min(local.shape.memory_mib, 4096)
    + 0.20 * min(max(local.shape.memory_mib - 4096, 0), 4096)
    + 0.10 * min(max(local.shape.memory_mib - 8192, 0), 8192)
    + 0.06 * min(max(local.shape.memory_mib - 16384, 0), 114688)
    + 0.02 * max(local.shape.memory_mib - 131072, 0)
    + 100
  )
  # DaemonSets on every node: Calico, the OpenTelemetry Collector, Loki's
  # log shipper, and the Linkerd proxy sidecar of the pod itself.
  daemonset_cpu_m      = 500
  daemonset_memory_mib = 1024

  allocatable_cpu_m      = local.shape.vcpus * 1000 - local.reserved_cpu_m - local.daemonset_cpu_m
  allocatable_memory_mib = local.shape.memory_mib - local.reserved_memory_mib - local.daemonset_memory_mib

  pods_per_node = var.workload == null ? null : floor(min(
    local.allocatable_cpu_m / var.workload.cpu_request_millicores,
    local.allocatable_memory_mib / var.workload.memory_request_mib,
  ))
}

resource "google_container_node_pool" "this" {
  project  = var.project_id
  cluster  = var.cluster_id
  location = var.location
  name     = var.name

  autoscaling {
    min_node_count = var.min_node_count
    max_node_count = var.max_node_count
  }

  management {
    auto_repair  = true
    auto_upgrade = true
  }

  upgrade_settings {
    max_surge       = 1
    max_unavailable = 0
  }

  node_config {
    machine_type    = var.machine_type
    image_type      = "COS_CONTAINERD"
    disk_type       = "pd-balanced"
    disk_size_gb    = var.disk_size_gb
    spot            = var.spot
    service_account = var.service_account
    oauth_scopes    = ["https://www.googleapis.com/auth/cloud-platform"]
    labels          = var.node_labels
    resource_labels = var.resource_labels

    dynamic "taint" {
      for_each = var.taints
      content {
        key    = taint.value.key
        value  = taint.value.value
        effect = taint.value.effect
      }
    }

    workload_metadata_config {
      mode = "GKE_METADATA"
    }

    shielded_instance_config {
      enable_secure_boot          = true
      enable_integrity_monitoring = true
    }

    metadata = {
      disable-legacy-endpoints = "true"
    }
  }

  lifecycle {
    precondition {
      condition = var.workload == null ? true : (
        var.workload.cpu_limit_millicores <= local.allocatable_cpu_m &&
        var.workload.memory_limit_mib <= local.allocatable_memory_mib
      )
      error_message = "One pod at its limits does not fit on a ${var.machine_type} node of pool ${var.name}: pick a larger machine_type."
    }
  }
}
