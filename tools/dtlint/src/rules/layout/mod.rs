//! Rules about how the repository is laid out: files, directories and the
//! kustomizations that list them.
pub mod kustomization_missing_file;
pub mod orphan_yaml;
pub mod seven_file_pattern;
