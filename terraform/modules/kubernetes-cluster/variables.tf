variable "project_id" {
  description = "Cloud project that owns the cluster and its network."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.project_id))
    error_message = "project_id must be a valid project id (6-30 lowercase letters, digits and hyphens)."
  }
}

variable "environment" {
  description = "Dark Tower environment this cluster runs: development, staging or production."
  type        = string

  validation {
    condition     = contains(["development", "staging", "production"], var.environment)
    error_message = "environment must be development, staging or production."
  }
}

variable "name" {
  description = "Cluster name; also the prefix of the network, subnetwork and service account."
  type        = string

  validation {
    condition     = can(regex("^[a-z]([-a-z0-9]{0,30}[a-z0-9])?$", var.name))
    error_message = "name must be a lowercase DNS label of at most 32 characters."
  }
}

variable "region" {
  description = "Region of the (regional, multi-zone) cluster."
  type        = string

  validation {
    condition     = can(regex("^[a-z]+-[a-z]+[0-9]$", var.region))
    error_message = "region must look like europe-west1 or us-central1."
  }
}

variable "release_channel" {
  description = "Kubernetes release channel: the control plane and nodes upgrade automatically within it."
  type        = string
  default     = "REGULAR"

  validation {
    condition     = contains(["RAPID", "REGULAR", "STABLE"], var.release_channel)
    error_message = "release_channel must be RAPID, REGULAR or STABLE."
  }
}

variable "nodes_cidr" {
  description = "Primary IPv4 range of the cluster subnetwork (node addresses)."
  type        = string
  default     = "10.10.0.0/20"

  validation {
    condition     = can(cidrhost(var.nodes_cidr, 0))
    error_message = "nodes_cidr must be an IPv4 CIDR block."
  }
}

variable "pods_cidr" {
  description = "Secondary range for pod IPs (VPC-native networking)."
  type        = string
  default     = "10.20.0.0/14"

  validation {
    condition     = can(cidrhost(var.pods_cidr, 0))
    error_message = "pods_cidr must be an IPv4 CIDR block."
  }
}

variable "services_cidr" {
  description = "Secondary range for Service ClusterIPs."
  type        = string
  default     = "10.24.0.0/20"

  validation {
    condition     = can(cidrhost(var.services_cidr, 0))
    error_message = "services_cidr must be an IPv4 CIDR block."
  }
}

variable "control_plane_cidr" {
  description = "/28 range for the private control-plane endpoint."
  type        = string
  default     = "172.16.0.0/28"

  validation {
    condition     = can(cidrhost(var.control_plane_cidr, 0)) && endswith(var.control_plane_cidr, "/28")
    error_message = "control_plane_cidr must be an IPv4 /28 block."
  }
}

variable "authorized_networks" {
  description = "CIDR blocks allowed to reach the Kubernetes API (CI runners, operators' VPN). Empty means only the VPC."
  type = list(object({
    cidr_block   = string
    display_name = string
  }))
  default = []

  validation {
    condition     = alltrue([for n in var.authorized_networks : can(cidrhost(n.cidr_block, 0)) && n.cidr_block != "0.0.0.0/0"])
    error_message = "authorized_networks must be CIDR blocks, and never 0.0.0.0/0."
  }
}

variable "rbac_security_group" {
  description = "Google Group (gke-security-groups@<domain>) whose member groups may be bound in Kubernetes RBAC; null disables Google Groups for RBAC."
  type        = string
  default     = null

  validation {
    condition     = var.rbac_security_group == null || can(regex("^gke-security-groups@", var.rbac_security_group))
    error_message = "rbac_security_group must be the gke-security-groups@<domain> group."
  }
}

variable "system_pool" {
  description = "The general node pool for the platform (Flux, Linkerd, PostgreSQL, Redis, observability), AC and GC."
  type = object({
    machine_type   = string
    min_node_count = number
    max_node_count = number
    disk_size_gb   = number
  })

  validation {
    condition     = var.system_pool.min_node_count >= 1 && var.system_pool.max_node_count >= var.system_pool.min_node_count
    error_message = "system_pool needs at least one node per zone and max_node_count >= min_node_count."
  }

  validation {
    condition     = var.system_pool.disk_size_gb >= 50
    error_message = "system_pool.disk_size_gb must be at least 50 (images and logs)."
  }
}

variable "deletion_protection" {
  description = "Refuse to destroy the cluster from Terraform (turn off only to decommission an environment)."
  type        = bool
  default     = true
}

variable "labels" {
  description = "Extra resource labels, merged over the standard ones (environment, part-of, managed-by)."
  type        = map(string)
  default     = {}
}

variable "secrets_encryption_key" {
  description = "KMS key (full resource id) that encrypts Kubernetes Secrets in etcd; the secrets-backend module creates it."
  type        = string

  validation {
    condition     = can(regex("^projects/[^/]+/locations/[^/]+/keyRings/[^/]+/cryptoKeys/[^/]+$", var.secrets_encryption_key))
    error_message = "secrets_encryption_key must be projects/P/locations/L/keyRings/R/cryptoKeys/K."
  }
}

variable "control_plane_webhook_ports" {
  description = "TCP ports of the admission webhooks the control plane must reach on the nodes, besides the 443 and 10250 GKE opens itself (Linkerd 8443/9443, CloudNativePG 9443, trust-manager 6443)."
  type        = list(string)
  default     = ["6443", "8443", "9443"]

  validation {
    condition     = alltrue([for p in var.control_plane_webhook_ports : can(regex("^[0-9]{1,5}$", p)) && tonumber(p) > 0 && tonumber(p) < 65536])
    error_message = "control_plane_webhook_ports must be TCP port numbers."
  }
}
