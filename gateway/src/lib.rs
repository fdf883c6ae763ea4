//! Sluice's data plane: a Pingora `ProxyHttp` serving the controller's `Snapshot`.

pub mod access_log;
pub mod admin;
pub mod backend_health;
pub mod cli;
pub mod dataplane;
pub mod echo;
pub mod edge;
pub mod filters;
pub mod grpc;
pub mod http_fields;
pub mod kube_mode;
pub mod listeners;
pub mod log_format;
pub mod metrics;
pub mod mirror;
pub mod proxy;
pub mod routing;
pub mod shadow;
pub mod standalone;
pub mod tls;
pub mod tls_route;
pub mod transport;
pub mod upstream;
