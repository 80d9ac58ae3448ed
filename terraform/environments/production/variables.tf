variable "project_id" {
  description = "Cloud project of the production environment."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.project_id))
    error_message = "project_id must be a valid project id."
  }
}

variable "region" {
  description = "Region of the production cluster."
  type        = string
  default     = "europe-west1"

  validation {
    condition     = can(regex("^[a-z]+-[a-z]+[0-9]$", var.region))
    error_message = "region must be a region such as europe-west1."
  }
}

variable "authorized_networks" {
  description = "CIDR blocks allowed to reach the production Kubernetes API (CI runners, operators' VPN)."
  type = list(object({
    cidr_block   = string
    display_name = string
  }))
  default = []

  validation {
    condition     = alltrue([for n in var.authorized_networks : n.cidr_block != "0.0.0.0/0"])
    error_message = "The Kubernetes API is never open to 0.0.0.0/0."
  }
}

variable "rbac_security_group" {
  description = "gke-security-groups@<domain> group for Google Groups RBAC, or null."
  type        = string
  default     = null

  validation {
    condition     = var.rbac_security_group == null || can(regex("^gke-security-groups@", var.rbac_security_group))
    error_message = "rbac_security_group must be the gke-security-groups@<domain> group."
  }
}

variable "system_pool" {
  description = "Shared node pool for the platform, AC and GC (counts per zone)."
  type = object({
    machine_type   = string
    min_node_count = number
    max_node_count = number
    disk_size_gb   = number
  })
  default = {
    machine_type   = "n2-standard-8"
    min_node_count = 1
    max_node_count = 3
    disk_size_gb   = 100
  }

  validation {
    condition     = var.system_pool.max_node_count >= var.system_pool.min_node_count
    error_message = "max_node_count must be >= min_node_count."
  }
}

variable "meeting_controller_pool" {
  description = "Dedicated meeting-controller pool (counts per zone)."
  type = object({
    machine_type   = string
    min_node_count = number
    max_node_count = number
  })
  default = {
    machine_type   = "n2-standard-8"
    min_node_count = 1
    max_node_count = 4
  }

  validation {
    condition     = var.meeting_controller_pool.max_node_count >= var.meeting_controller_pool.min_node_count
    error_message = "max_node_count must be >= min_node_count."
  }
}

variable "media_handler_pool" {
  description = "Dedicated media-handler pool (counts per zone)."
  type = object({
    machine_type   = string
    min_node_count = number
    max_node_count = number
  })
  default = {
    machine_type   = "n2-standard-16"
    min_node_count = 1
    max_node_count = 6
  }

  validation {
    condition     = var.media_handler_pool.max_node_count >= var.media_handler_pool.min_node_count
    error_message = "max_node_count must be >= min_node_count."
  }
}
