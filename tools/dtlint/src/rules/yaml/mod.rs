//! Rules about the YAML itself, before any Kubernetes meaning.
pub mod duplicate_key;
pub mod invalid_yaml;
pub mod wrong_type;
pub mod yaml11_value;
