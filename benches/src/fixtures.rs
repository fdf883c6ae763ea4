//! Generated Gateway API configurations: the same objects feed the micro-benchmarks (as typed
//! `Resources`) and the load benchmark (as a standalone-mode YAML file).

use std::net::SocketAddr;

use serde::de::DeserializeOwned;
use serde_json::{json, Value};
use sluice_controller::resources::Resources;

pub mod protocols;
pub mod shadow;

/// How the extra routes are spread, which decides the data structure a lookup walks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// Every route has its own hostname `rN.bench.test`: the exact-host map.
    Hosts,
    /// Every route is a `PathPrefix /rN` on the same listener: the entry list of one group.
    Paths,
}

/// What to generate: one Gateway listening on `listen`, a catch-all route to `primary`
/// (optionally mirrored to `mirror`), and `extra_routes` more routes of `shape` to `primary`.
#[derive(Debug, Clone)]
pub struct Topology {
    pub listen: SocketAddr,
    pub primary: SocketAddr,
    pub mirror: Option<SocketAddr>,
    pub extra_routes: usize,
    pub shape: Shape,
    /// Appended to the extra routes' names, so a rewritten file is a real change.
    pub revision: u64,
    /// Restricts the catch-all route to this hostname, so a request for an extra route's host is
    /// answered only once that route is live (the propagation measurement).
    pub main_host: Option<String>,
}

pub const NAMESPACE: &str = "bench";
pub const GATEWAY: &str = "bench";

#[derive(Debug, thiserror::Error)]
pub enum FixtureError {
    #[error("generated {kind} does not decode: {source}")]
    Decode {
        kind: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("generated object cannot be rendered as YAML: {source}")]
    Render {
        #[source]
        source: serde_yaml_ng::Error,
    },
}

impl Topology {
    /// The objects, in the order a person would write them.
    pub fn objects(&self) -> Vec<Value> {
        let mut out = vec![
            gateway_class(),
            gateway(self.listen),
            service("primary"),
            endpoint_slice("primary", self.primary),
        ];
        if let Some(mirror) = self.mirror {
            out.push(service("mirror"));
            out.push(endpoint_slice("mirror", mirror));
        }
        out.push(catch_all_route(
            self.mirror.is_some(),
            self.main_host.clone(),
        ));
        out.extend((0..self.extra_routes).map(|i| extra_route(i, self.shape, self.revision)));
        out
    }

    /// The standalone-mode configuration file.
    pub fn yaml(&self) -> Result<String, FixtureError> {
        yaml(&self.objects())
    }

    /// The typed objects `translate` takes, without a YAML round trip.
    pub fn resources(&self) -> Result<Resources, FixtureError> {
        let mut r = Resources::default();
        for object in self.objects() {
            let kind = object["kind"].as_str().unwrap_or_default().to_string();
            match kind.as_str() {
                "GatewayClass" => r.gateway_classes.push(decode(&kind, object)?),
                "Gateway" => r.gateways.push(decode(&kind, object)?),
                "Service" => r.services.push(decode(&kind, object)?),
                "EndpointSlice" => r.endpoint_slices.push(decode(&kind, object)?),
                _ => r.http_routes.push(decode(&kind, object)?),
            }
        }
        // The loader's invariant: every list sorted by namespace/name.
        r.http_routes
            .sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
        r.services
            .sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
        r.endpoint_slices
            .sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
        Ok(r)
    }
}

/// `objects` as a standalone-mode configuration file, one YAML document each.
pub fn yaml(objects: &[Value]) -> Result<String, FixtureError> {
    let mut text = String::new();
    for object in objects {
        text.push_str("---\n");
        text.push_str(
            &serde_yaml_ng::to_string(object).map_err(|source| FixtureError::Render { source })?,
        );
    }
    Ok(text)
}

/// Decodes a generated `object` of `kind` into the type `translate` reads.
fn decode<T: DeserializeOwned>(kind: &str, object: Value) -> Result<T, FixtureError> {
    serde_json::from_value(object).map_err(|source| FixtureError::Decode {
        kind: kind.to_string(),
        source,
    })
}

/// The host of the `i`th extra route of the `Hosts` shape, and the path of the `Paths` shape.
pub fn extra_host(i: usize) -> String {
    format!("r{i}.bench.test")
}

pub fn extra_path(i: usize) -> String {
    format!("/r{i}")
}

fn metadata(name: &str, namespaced: bool) -> Value {
    let mut m = json!({
        "name": name,
        "uid": format!("00000000-0000-0000-0000-{:012x}", fxhash(name)),
        "generation": 1,
        "creationTimestamp": "2026-01-01T00:00:00Z",
    });
    if namespaced {
        m["namespace"] = json!(NAMESPACE);
    }
    m
}

/// A stable per-name number for uids; collisions would only make two uids equal, never wrong routing.
fn fxhash(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    }) & 0xffff_ffff_ffff
}

fn gateway_class() -> Value {
    json!({
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "GatewayClass",
        "metadata": metadata("sluice", false),
        "spec": { "controllerName": sluice_controller::CONTROLLER_NAME },
    })
}

fn gateway(listen: SocketAddr) -> Value {
    gateway_with(
        listen,
        json!({
            "name": "http",
            "protocol": "HTTP",
            "port": listen.port(),
            "allowedRoutes": { "namespaces": { "from": "Same" } },
        }),
    )
}

/// The Gateway `bench` at `listen`'s address with this one listener.
fn gateway_with(listen: SocketAddr, listener: Value) -> Value {
    json!({
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "Gateway",
        "metadata": metadata(GATEWAY, true),
        "spec": {
            "gatewayClassName": "sluice",
            "addresses": [{ "type": "IPAddress", "value": listen.ip().to_string() }],
            "listeners": [listener],
        },
    })
}

fn service(name: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(name, true),
        "spec": {
            "ports": [{ "name": "http", "port": 8080, "protocol": "TCP", "appProtocol": "http" }],
        },
    })
}

fn endpoint_slice(service: &str, addr: SocketAddr) -> Value {
    let mut meta = metadata(&format!("{service}-1"), true);
    meta["labels"] = json!({ "kubernetes.io/service-name": service });
    json!({
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": meta,
        "addressType": if addr.is_ipv4() { "IPv4" } else { "IPv6" },
        "endpoints": [{ "addresses": [addr.ip().to_string()], "conditions": { "ready": true } }],
        "ports": [{ "name": "http", "port": addr.port(), "protocol": "TCP" }],
    })
}

fn route(name: &str, hostnames: Option<Vec<String>>, rule: Value) -> Value {
    let mut spec = json!({
        "parentRefs": [{ "name": GATEWAY, "sectionName": "http" }],
        "rules": [rule],
    });
    if let Some(h) = hostnames {
        spec["hostnames"] = json!(h);
    }
    json!({
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": metadata(name, true),
        "spec": spec,
    })
}

fn catch_all_route(mirrored: bool, host: Option<String>) -> Value {
    let mut rule = json!({
        "matches": [{ "path": { "type": "PathPrefix", "value": "/" } }],
        "backendRefs": [{ "name": "primary", "port": 8080 }],
    });
    if mirrored {
        rule["filters"] = json!([{
            "type": "RequestMirror",
            "requestMirror": { "backendRef": { "name": "mirror", "port": 8080 } },
        }]);
    }
    route("main", host.map(|h| vec![h]), rule)
}

fn extra_route(i: usize, shape: Shape, revision: u64) -> Value {
    let name = format!("r{i:05}-{revision}");
    let backend = json!([{ "name": "primary", "port": 8080 }]);
    match shape {
        Shape::Hosts => route(
            &name,
            Some(vec![extra_host(i)]),
            json!({
                "matches": [{ "path": { "type": "PathPrefix", "value": "/" } }],
                "backendRefs": backend,
            }),
        ),
        Shape::Paths => route(
            &name,
            None,
            json!({
                "matches": [{ "path": { "type": "PathPrefix", "value": extra_path(i) } }],
                "backendRefs": backend,
            }),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topology(extra_routes: usize, shape: Shape) -> Topology {
        Topology {
            listen: SocketAddr::from(([127, 0, 0, 1], 8000)),
            primary: SocketAddr::from(([127, 0, 0, 1], 9000)),
            mirror: Some(SocketAddr::from(([127, 0, 0, 1], 9001))),
            extra_routes,
            shape,
            revision: 0,
            main_host: None,
        }
    }

    #[test]
    fn generated_objects_decode_into_their_types() {
        let r = topology(3, Shape::Hosts)
            .resources()
            .expect("fixtures decode");
        assert_eq!(r.gateways.len(), 1);
        assert_eq!(r.http_routes.len(), 4);
        assert_eq!(r.services.len(), 2);
        assert_eq!(r.endpoint_slices.len(), 2);
    }

    #[test]
    fn generated_yaml_loads_like_a_hand_written_file() {
        let text = topology(2, Shape::Paths).yaml().expect("renders");
        let loaded = Resources::from_yaml_documents(std::path::Path::new("bench.yaml"), &text)
            .expect("loads");
        assert_eq!(loaded.resources.http_routes.len(), 3);
        assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    }
}
