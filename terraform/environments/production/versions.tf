terraform {
  required_version = ">= 1.9.0, < 2.0.0"

  # Exact pins in the root module; the modules accept any 6.x from 6.30.
  required_providers {
    google = {
      source  = "hashicorp/google"
      version = "6.30.0"
    }
    google-beta = {
      source  = "hashicorp/google-beta"
      version = "6.30.0"
    }
  }

  # State lives in a versioned bucket of the ops project; credentials come
  # from the caller's Application Default Credentials, never from this file.
  backend "gcs" {
    bucket = "dark-tower-terraform-state"
    prefix = "environments/production"
  }
}
