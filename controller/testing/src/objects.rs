//! Builders for the Kubernetes objects tests create on the fake API server, as JSON.

use std::net::SocketAddr;

use serde_json::{json, Value};

pub fn namespace(name: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": name, "labels": {"kubernetes.io/metadata.name": name}},
    })
}

/// The GatewayClass `sluice`, served by Sluice's controller name.
pub fn gateway_class() -> Value {
    json!({
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "GatewayClass",
        "metadata": {"name": "sluice"},
        "spec": {"controllerName": sluice_controller::CONTROLLER_NAME},
    })
}

/// A Gateway of class `sluice` with one HTTP listener `http` on `port`.
pub fn gateway(namespace: &str, name: &str, port: u16) -> Value {
    json!({
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "Gateway",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "gatewayClassName": "sluice",
            "listeners": [{"name": "http", "port": port, "protocol": "HTTP"}],
        },
    })
}

/// An HTTPRoute attached to `gateway`, sending `path_prefix` to `service:port`.
pub fn http_route(
    namespace: &str,
    name: &str,
    gateway: &str,
    path_prefix: &str,
    service: &str,
    port: u16,
) -> Value {
    json!({
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "parentRefs": [{"name": gateway}],
            "rules": [{
                "matches": [{"path": {"type": "PathPrefix", "value": path_prefix}}],
                "backendRefs": [{"name": service, "port": port}],
            }],
        },
    })
}

pub fn service(namespace: &str, name: &str, port: u16) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"ports": [{"name": "http", "port": port, "protocol": "TCP"}]},
    })
}

/// An EndpointSlice for `service` whose ready endpoints are `endpoints` (all on one port).
pub fn endpoint_slice(
    namespace: &str,
    service: &str,
    port_name: &str,
    endpoints: &[SocketAddr],
) -> Value {
    let target_port = endpoints.first().map(SocketAddr::port).unwrap_or(0);
    json!({
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": format!("{service}-1"),
            "namespace": namespace,
            "labels": {"kubernetes.io/service-name": service},
        },
        "addressType": "IPv4",
        "ports": [{"name": port_name, "port": target_port, "protocol": "TCP"}],
        "endpoints": endpoints.iter().map(|e| json!({
            "addresses": [e.ip().to_string()],
            "conditions": {"ready": true},
        })).collect::<Vec<_>>(),
    })
}

/// A `kubernetes.io/tls` Secret holding the PEM `certificate` chain and `key` (the API server
/// stores `data` base64-encoded, which `ByteString` writes).
pub fn tls_secret(namespace: &str, name: &str, certificate: &str, key: &str) -> Value {
    use k8s_openapi::ByteString;
    let data = std::collections::BTreeMap::from([
        (
            "tls.crt".to_string(),
            ByteString(certificate.as_bytes().to_vec()),
        ),
        ("tls.key".to_string(), ByteString(key.as_bytes().to_vec())),
    ]);
    json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace},
        "type": "kubernetes.io/tls",
        "data": data,
    })
}

/// A Gateway of class `sluice` with one HTTPS listener `https` for `hostname` on `port`,
/// terminating TLS with the Secrets `certificate_refs` (names in the Gateway's namespace).
pub fn https_gateway(
    namespace: &str,
    name: &str,
    port: u16,
    hostname: &str,
    certificate_refs: &[&str],
) -> Value {
    let refs: Vec<Value> = certificate_refs
        .iter()
        .map(|r| json!({"name": r}))
        .collect();
    let mut gw = gateway(namespace, name, port);
    gw["spec"]["listeners"] = json!([{
        "name": "https", "port": port, "protocol": "HTTPS", "hostname": hostname,
        "tls": {"mode": "Terminate", "certificateRefs": refs},
    }]);
    gw
}
