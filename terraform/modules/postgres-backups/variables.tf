variable "project_id" {
  description = "Cloud project that holds the backup bucket."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.project_id))
    error_message = "project_id must be a valid project id."
  }
}

variable "environment" {
  description = "Dark Tower environment whose database is backed up: development, staging or production."
  type        = string

  validation {
    condition     = contains(["development", "staging", "production"], var.environment)
    error_message = "environment must be development, staging or production."
  }
}

variable "region" {
  description = "Region of the bucket (kept next to the cluster)."
  type        = string

  validation {
    condition     = can(regex("^[a-z]+-[a-z]+[0-9]$", var.region))
    error_message = "region must be a region such as europe-west1."
  }
}

variable "key_ring_id" {
  description = "KMS key ring (id) in which the bucket's encryption key is created."
  type        = string

  validation {
    condition     = can(regex("^projects/[^/]+/locations/[^/]+/keyRings/[^/]+$", var.key_ring_id))
    error_message = "key_ring_id must be projects/<p>/locations/<l>/keyRings/<name>."
  }
}

variable "key_rotation_period" {
  description = "Rotation period of the bucket's KMS key, in seconds with an s suffix (KMS format); at most 90 days."
  type        = string
  default     = "7776000s"

  validation {
    condition     = can(regex("^[0-9]+s$", var.key_rotation_period)) && tonumber(trimsuffix(var.key_rotation_period, "s")) >= 86400 && tonumber(trimsuffix(var.key_rotation_period, "s")) <= 7776000
    error_message = "key_rotation_period must be between 86400s (1 day) and 7776000s (90 days)."
  }
}

variable "retention_days" {
  description = "Days of backups barman-cloud keeps (the ObjectStore's retentionPolicy in the environment's overlay; a test keeps the two equal)."
  type        = number
  default     = 30

  validation {
    condition     = var.retention_days >= 7 && var.retention_days <= 365
    error_message = "retention_days must be between 7 and 365."
  }
}

variable "log_retention_days" {
  description = "Days the bucket's access logs are kept."
  type        = number
  default     = 90

  validation {
    condition     = var.log_retention_days >= 30 && var.log_retention_days <= 400
    error_message = "log_retention_days must be between 30 and 400."
  }
}

variable "kubernetes_service_account" {
  description = "Kubernetes service account (namespace/name) of the CloudNativePG instances, which the operator names after the Cluster."
  type        = string
  default     = "dark-tower/postgres"

  validation {
    condition     = can(regex("^[a-z0-9-]+/[a-z0-9-]+$", var.kubernetes_service_account))
    error_message = "kubernetes_service_account must be namespace/name."
  }
}

variable "labels" {
  description = "Extra labels for the bucket and key."
  type        = map(string)
  default     = {}
}

variable "workload_identity_pool" {
  description = "The cluster's Workload Identity pool (module kubernetes-cluster's workload_identity_pool): the binding below waits for the cluster that creates it."
  type        = string

  validation {
    condition     = endswith(var.workload_identity_pool, ".svc.id.goog")
    error_message = "workload_identity_pool must be a <project>.svc.id.goog pool."
  }
}
