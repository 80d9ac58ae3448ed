//! Rules about the repository as the clusters apply it: overlay builds and
//! per-environment policy.
pub mod kustomize_build_failed;
pub mod missing_environment_overlay;
pub mod replicas_per_environment;
pub mod replicas_with_hpa;
pub mod resources_per_environment;
pub mod unsafe_kustomize_path;
