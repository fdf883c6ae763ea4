//! GRPCRoute end to end from YAML, as an operator writes it: Sluice started from a config
//! directory, a GRPCRoute with a RequestMirror, Services without `appProtocol` (a GRPCRoute's
//! backends speak HTTP/2 whatever the port says), gRPC-framed streaming calls over h2c.

use std::time::Duration;

use sluice_test_support::grpc::{self, Behaviour, Client};
use sluice_test_support::standalone::{self, gateway, local, service_at, ConfigDir, CLASS};
use sluice_test_support::within;

const CALL: Duration = Duration::from_secs(10);

/// Gateway `gw` on `port`; GRPCRoute `stream` sends Echo and Collect of `sluice.test.Stream` to
/// Service `primary`, mirrors them to Service `mirror`, and adds header `x-route: grpc`.
fn config(port: u16, primary: u16, mirror: u16) -> String {
    format!(
        "{CLASS}{}{}{}\
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {{name: stream, namespace: default}}
spec:
  parentRefs:
  - name: gw
  rules:
  - matches:
    - method: {{service: sluice.test.Stream, method: Echo}}
    - method: {{service: sluice.test.Stream, method: Collect}}
    filters:
    - type: RequestHeaderModifier
      requestHeaderModifier:
        set: [{{name: x-route, value: grpc}}]
    - type: RequestMirror
      requestMirror:
        backendRef: {{name: mirror, port: 8080}}
    backendRefs:
    - {{name: primary, port: 8080}}
",
        service_at("primary", primary),
        service_at("mirror", mirror),
        gateway("gw", &[port]),
    )
}

/// Sluice serving [`config`], its two backends and a client connected to it.
struct Fixture {
    primary: grpc::Backend,
    mirror: grpc::Backend,
    client: Client,
    _sluice: sluice_gateway::standalone::Running,
    _dir: ConfigDir,
}

impl Fixture {
    async fn start() -> Fixture {
        let primary = grpc::Backend::start(Behaviour::Answer).await;
        let mirror = grpc::Backend::start(Behaviour::Answer).await;
        let port = standalone::free_port();
        let dir = ConfigDir::new(&config(port, primary.addr.port(), mirror.addr.port()));
        let sluice = standalone::start(&dir).await;
        let client = Client::connect(local(port)).await;
        Fixture {
            primary,
            mirror,
            client,
            _sluice: sluice,
            _dir: dir,
        }
    }
}

#[tokio::test]
async fn grpc_route_streams_a_bidi_call_and_mirrors_its_messages_intact() {
    let fx = Fixture::start().await;
    let (primary, mirror, client) = (&fx.primary, &fx.mirror, &fx.client);
    let sent = grpc::messages(5, 200);
    let mut call = client.open(grpc::ECHO, &[]).await;
    for message in &sent {
        call.send(message);
        // Full duplex through the route: each answer comes back before the next message.
        let answer = within("the answer to each message", CALL, call.next_message()).await;
        assert_eq!(answer.as_ref(), Some(message));
    }
    call.finish();
    let (rest, trailers) = within("the end of the call", CALL, call.rest()).await;
    assert!(rest.is_empty());
    assert_eq!(trailers["grpc-status"], "0");

    let served = primary
        .call_where("the primary call", |c| c.ended.is_some())
        .await;
    assert_eq!(served.headers["x-route"], "grpc", "the route's filter ran");
    let copy = mirror
        .call_where("the mirrored call", |c| c.ended.is_some())
        .await;
    assert_eq!(copy.path, grpc::ECHO);
    assert_eq!(copy.ended, Some(true));
    assert_eq!(copy.message_bytes(), sent, "same messages, same order");
    assert_eq!(
        copy.headers["x-route"], "grpc",
        "filters before the mirror apply"
    );
}

#[tokio::test]
async fn grpc_method_no_rule_matches_gets_unimplemented_from_sluice() {
    let fx = Fixture::start().await;
    let (primary, mirror, client) = (&fx.primary, &fx.mirror, &fx.client);
    // Repeat is served by the backend, but no rule of the route matches it.
    let mut call = client.open(grpc::REPEAT, &[]).await;
    call.send(b"x");
    call.finish();
    let head = within("the answer", CALL, call.head()).await;
    assert_eq!(head.status, 200, "gRPC answers are HTTP 200");
    assert_eq!(
        head.headers["grpc-status"], "12",
        "UNIMPLEMENTED, Trailers-Only"
    );
    assert!(primary.calls().is_empty() && mirror.calls().is_empty());
}
