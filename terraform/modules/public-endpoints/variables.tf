variable "project_id" {
  description = "Cloud project of the environment (its zone, addresses and load balancers)."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.project_id))
    error_message = "project_id must be a valid project id."
  }
}

variable "environment" {
  description = "Dark Tower environment: development, staging or production."
  type        = string

  validation {
    condition     = contains(["development", "staging", "production"], var.environment)
    error_message = "environment must be development, staging or production."
  }
}

variable "region" {
  description = "Region of the cluster: the load balancers' addresses are regional."
  type        = string

  validation {
    condition     = can(regex("^[a-z]+-[a-z]+[0-9]$", var.region))
    error_message = "region must be a region such as europe-west1."
  }
}

variable "domain" {
  description = "The environment's public domain, without the trailing dot (staging.dark-tower.example); replicas are <service>-<n>.media.<domain>, the MEDIA_DOMAIN of the services' ConfigMaps."
  type        = string

  validation {
    condition     = can(regex("^([a-z0-9]([a-z0-9-]*[a-z0-9])?\\.)+[a-z]{2,}$", var.domain))
    error_message = "domain must be a lowercase DNS name without a trailing dot."
  }
}

variable "replicas" {
  description = "Replicas of each publicly reached StatefulSet (meeting-controller, media-handler): one address and name per ordinal. Equal to the overlay's replicas (a test keeps them so)."
  type        = map(number)

  validation {
    condition     = alltrue([for service, count in var.replicas : contains(["meeting-controller", "media-handler"], service) && count >= 1 && count <= 50 && floor(count) == count])
    error_message = "replicas maps meeting-controller and/or media-handler to a whole number between 1 and 50."
  }
}

variable "labels" {
  description = "Extra labels for the zone and the addresses."
  type        = map(string)
  default     = {}

  validation {
    condition     = alltrue([for k, v in var.labels : can(regex("^[a-z][a-z0-9_-]{0,62}$", k))])
    error_message = "Label keys must be lowercase, start with a letter and be at most 63 characters."
  }
}

variable "cert_manager_dns01" {
  description = "Whether cert-manager solves ACME DNS-01 challenges in this zone (staging and production; development's issuer is its own CA)."
  type        = bool
  default     = true
}

variable "cert_manager_service_account" {
  description = "Kubernetes service account (namespace/name) of cert-manager's controller, which assumes the DNS-01 identity."
  type        = string
  default     = "cert-manager/cert-manager"

  validation {
    condition     = can(regex("^[a-z0-9-]+/[a-z0-9-]+$", var.cert_manager_service_account))
    error_message = "cert_manager_service_account must be namespace/name."
  }
}

variable "workload_identity_pool" {
  description = "The cluster's Workload Identity pool (module kubernetes-cluster's workload_identity_pool): the binding below waits for the cluster that creates it."
  type        = string

  validation {
    condition     = endswith(var.workload_identity_pool, ".svc.id.goog")
    error_message = "workload_identity_pool must be a <project>.svc.id.goog pool."
  }
}
