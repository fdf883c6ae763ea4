//! Where resources come from: YAML files in standalone mode (`file`, watched and admitted as the
//! API server would), or the Kubernetes API in a cluster (`kube`, reflectors for every kind
//! translation reads). Both hand the whole set to `translate` and publish one snapshot.

pub mod file;
pub mod kube;
