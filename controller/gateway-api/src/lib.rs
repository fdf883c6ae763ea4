//! Gateway API v1.6.1 types, experimental channel (a superset of standard), generated with kopium.
//!
//! Regenerate with `controller/gateway-api/generate.sh` after replacing the CRDs in `controller/crds/`; the
//! types and the schemas standalone mode validates with then come from the same files.

pub mod apis;
