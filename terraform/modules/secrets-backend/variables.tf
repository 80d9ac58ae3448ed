variable "project_id" {
  description = "Cloud project that holds the keys and secrets."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.project_id))
    error_message = "project_id must be a valid project id."
  }
}

variable "environment" {
  description = "Dark Tower environment the age key belongs to: development, staging or production."
  type        = string

  validation {
    condition     = contains(["development", "staging", "production"], var.environment)
    error_message = "environment must be development, staging or production."
  }
}

variable "region" {
  description = "Region of the KMS key ring and of the secret's replica (kept next to the cluster)."
  type        = string

  validation {
    condition     = can(regex("^[a-z]+-[a-z]+[0-9]$", var.region))
    error_message = "region must be a region such as europe-west1."
  }
}

variable "key_rotation_period" {
  description = "Rotation period of the KMS keys, in seconds with an s suffix (KMS format); at most 90 days."
  type        = string
  default     = "7776000s"

  validation {
    condition     = can(regex("^[0-9]+s$", var.key_rotation_period)) && tonumber(trimsuffix(var.key_rotation_period, "s")) >= 86400 && tonumber(trimsuffix(var.key_rotation_period, "s")) <= 7776000
    error_message = "key_rotation_period must be between 86400s (1 day) and 7776000s (90 days)."
  }
}

variable "flux_service_account" {
  description = "Kubernetes service account (namespace/name) that reads the age key through Workload Identity."
  type        = string
  default     = "flux-system/kustomize-controller"

  validation {
    condition     = can(regex("^[a-z0-9-]+/[a-z0-9-]+$", var.flux_service_account))
    error_message = "flux_service_account must be namespace/name."
  }
}

variable "labels" {
  description = "Extra labels on the secret and keys."
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
