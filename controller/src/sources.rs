//! Where resources come from: YAML files in standalone mode (`file`).

pub mod file;
pub mod kube;
