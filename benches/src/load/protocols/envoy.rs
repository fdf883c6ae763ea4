//! Envoy's configurations for the gRPC and TLS passthrough workloads: what its own docs show for
//! each (an HTTP connection manager to an h2c cluster; SNI filter chains to a TCP proxy).

use std::net::SocketAddr;

use crate::fixtures::protocols::{GRPC_SERVICE, TLS_HOSTNAME};
use crate::load::proxies::envoy_cluster;

/// The cluster's upstream protocol pinned to HTTP/2 (prior knowledge, no TLS): h2c.
const H2C: &str = "    typed_extension_protocol_options:\n      \
    envoy.extensions.upstreams.http.v3.HttpProtocolOptions:\n        \
    \"@type\": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions\n        \
    explicit_http_config:\n          http2_protocol_options: {}\n";

/// An HTTP connection manager on `listen` (codec AUTO: it takes h2c with prior knowledge) routing
/// the `bench.Echo` service to `backend` over h2c.
pub fn grpc_conf(listen: SocketAddr, backend: SocketAddr) -> String {
    format!(
        "static_resources:\n  listeners:\n  - name: grpc\n    address:\n      socket_address: {{ address: {}, port_value: {} }}\n    \
         filter_chains:\n    - filters:\n      - name: envoy.filters.network.http_connection_manager\n        typed_config:\n          \
         \"@type\": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager\n          \
         stat_prefix: grpc\n          codec_type: AUTO\n          route_config:\n            virtual_hosts:\n            \
         - name: all\n              domains: [\"*\"]\n              routes:\n              \
         - match: {{ prefix: \"/{GRPC_SERVICE}/\", grpc: {{}} }}\n                route:\n                  cluster: grpc\n          \
         http_filters:\n          - name: envoy.filters.http.router\n            typed_config:\n              \
         \"@type\": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router\n  clusters:\n{}",
        listen.ip(),
        listen.port(),
        envoy_cluster("grpc", backend, H2C),
    )
}

/// A listener on `listen` that reads the ClientHello's SNI (tls_inspector) and hands connections
/// for `bench.example.com` to a TCP proxy to `backend`, without terminating TLS.
pub fn tls_conf(listen: SocketAddr, backend: SocketAddr) -> String {
    format!(
        "static_resources:\n  listeners:\n  - name: tls\n    address:\n      socket_address: {{ address: {}, port_value: {} }}\n    \
         listener_filters:\n    - name: envoy.filters.listener.tls_inspector\n      typed_config:\n        \
         \"@type\": type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector\n    \
         filter_chains:\n    - filter_chain_match:\n        server_names: [\"{TLS_HOSTNAME}\"]\n      filters:\n      \
         - name: envoy.filters.network.tcp_proxy\n        typed_config:\n          \
         \"@type\": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy\n          \
         stat_prefix: tls\n          cluster: tls\n  clusters:\n{}",
        listen.ip(),
        listen.port(),
        envoy_cluster("tls", backend, ""),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_yaml_ng::Value;

    const LISTEN: ([u8; 4], u16) = ([127, 0, 0, 1], 8000);
    const BACKEND: ([u8; 4], u16) = ([127, 0, 0, 1], 9000);

    fn parse(text: &str) -> Value {
        serde_yaml_ng::from_str(text).expect("valid YAML")
    }

    #[test]
    fn grpc_conf_routes_the_service_to_an_h2c_cluster() {
        let conf = parse(&grpc_conf(LISTEN.into(), BACKEND.into()));
        let resources = &conf["static_resources"];
        let listener = &resources["listeners"][0];
        assert_eq!(listener["address"]["socket_address"]["port_value"], 8000);
        let hcm = &listener["filter_chains"][0]["filters"][0]["typed_config"];
        assert_eq!(hcm["codec_type"], "AUTO");
        let route = &hcm["route_config"]["virtual_hosts"][0]["routes"][0];
        assert_eq!(route["match"]["prefix"], "/bench.Echo/");
        assert_eq!(route["route"]["cluster"], "grpc");
        let cluster = &resources["clusters"][0];
        assert_eq!(cluster["name"], "grpc");
        let options = &cluster["typed_extension_protocol_options"]
            ["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"];
        assert!(options["explicit_http_config"]["http2_protocol_options"].is_mapping());
        let endpoint = &cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"];
        assert_eq!(endpoint["address"]["socket_address"]["port_value"], 9000);
    }

    #[test]
    fn tls_conf_matches_the_sni_and_proxies_tcp() {
        let conf = parse(&tls_conf(LISTEN.into(), BACKEND.into()));
        let listener = &conf["static_resources"]["listeners"][0];
        assert_eq!(
            listener["listener_filters"][0]["name"],
            "envoy.filters.listener.tls_inspector"
        );
        let chain = &listener["filter_chains"][0];
        assert_eq!(
            chain["filter_chain_match"]["server_names"][0],
            "bench.example.com"
        );
        assert_eq!(
            chain["filters"][0]["name"],
            "envoy.filters.network.tcp_proxy"
        );
        assert_eq!(chain["filters"][0]["typed_config"]["cluster"], "tls");
        let cluster = &conf["static_resources"]["clusters"][0];
        assert_eq!(cluster["name"], "tls");
        assert!(cluster["typed_extension_protocol_options"].is_null());
    }
}
