//! Rules about references between objects.
pub mod dangling_config_ref;
