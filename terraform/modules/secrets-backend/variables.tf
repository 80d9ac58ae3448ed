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

variable "labels" {
  description = "Extra labels on the secret and keys."
  type        = map(string)
  default     = {}
}
