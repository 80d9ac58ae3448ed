variable "project_id" {
  description = "Cloud project of the cluster."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.project_id))
    error_message = "project_id must be a valid project id."
  }
}

variable "cluster_id" {
  description = "Id of the cluster the pool joins (kubernetes-cluster module output `id`)."
  type        = string

  validation {
    condition     = length(var.cluster_id) > 0
    error_message = "cluster_id must not be empty."
  }
}

variable "location" {
  description = "Region of the cluster; the pool spreads over its zones."
  type        = string

  validation {
    condition     = can(regex("^[a-z]+-[a-z]+[0-9]$", var.location))
    error_message = "location must be a region such as europe-west1."
  }
}

variable "name" {
  description = "Pool name, e.g. system, meeting-controller, media-handler."
  type        = string

  validation {
    condition     = can(regex("^[a-z]([-a-z0-9]{0,38}[a-z0-9])?$", var.name))
    error_message = "name must be a lowercase DNS label of at most 40 characters."
  }
}

variable "machine_type" {
  description = "Machine type of the nodes; one of the shapes this module knows the capacity of (see locals.machine_shapes)."
  type        = string

  validation {
    condition = contains([
      "e2-standard-2", "e2-standard-4", "e2-standard-8", "e2-standard-16",
      "n2-standard-4", "n2-standard-8", "n2-standard-16", "n2-standard-32",
      "c2-standard-8", "c2-standard-16", "c2-standard-30",
    ], var.machine_type)
    error_message = "machine_type must be one of the shapes listed in locals.machine_shapes of the node-pool module."
  }
}

variable "min_node_count" {
  description = "Autoscaler minimum, per zone."
  type        = number

  validation {
    condition     = var.min_node_count >= 0 && floor(var.min_node_count) == var.min_node_count
    error_message = "min_node_count must be a whole number >= 0."
  }
}

variable "max_node_count" {
  description = "Autoscaler maximum, per zone."
  type        = number

  validation {
    condition     = var.max_node_count >= 1 && var.max_node_count >= var.min_node_count && floor(var.max_node_count) == var.max_node_count
    error_message = "max_node_count must be a whole number >= 1 and >= min_node_count."
  }
}

variable "disk_size_gb" {
  description = "Boot disk size of each node."
  type        = number
  default     = 100

  validation {
    condition     = var.disk_size_gb >= 50 && var.disk_size_gb <= 2000
    error_message = "disk_size_gb must be between 50 and 2000."
  }
}

variable "spot" {
  description = "Use Spot VMs (cheaper, may be reclaimed at any time). Never for production media or signalling."
  type        = bool
  default     = false
}

variable "service_account" {
  description = "Email of the service account the nodes run as."
  type        = string

  validation {
    condition     = can(regex("@.+\\.iam\\.gserviceaccount\\.com$", var.service_account))
    error_message = "service_account must be a service account email."
  }
}

variable "node_labels" {
  description = "Kubernetes labels on the nodes; workloads select the pool with them."
  type        = map(string)
  default     = {}
}

variable "taints" {
  description = "Kubernetes taints on the nodes; only pods that tolerate them are scheduled there."
  type = list(object({
    key    = string
    value  = string
    effect = string
  }))
  default = []

  validation {
    condition     = alltrue([for t in var.taints : contains(["NO_SCHEDULE", "PREFER_NO_SCHEDULE", "NO_EXECUTE"], t.effect)])
    error_message = "taint effect must be NO_SCHEDULE, PREFER_NO_SCHEDULE or NO_EXECUTE."
  }
}

variable "workload" {
  description = "Per-pod requests/limits of the service the pool is dedicated to (ADR-0012 sizing), or null for a shared pool. The pool refuses a machine type on which one pod at its limits does not fit."
  type = object({
    cpu_request_millicores = number
    cpu_limit_millicores   = number
    memory_request_mib     = number
    memory_limit_mib       = number
  })
  default = null

  validation {
    condition = var.workload == null ? true : (
      var.workload.cpu_request_millicores > 0 &&
      var.workload.cpu_limit_millicores >= var.workload.cpu_request_millicores &&
      var.workload.memory_request_mib > 0 &&
      var.workload.memory_limit_mib >= var.workload.memory_request_mib
    )
    error_message = "workload requests must be positive and limits at least the requests."
  }
}

variable "resource_labels" {
  description = "Cloud labels on the node VMs."
  type        = map(string)
  default     = {}
}
