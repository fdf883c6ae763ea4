//! The `sluice` binary end to end: `validate` exit codes, a missing `--config`, a refused reload
//! while the last good snapshot serves, and an invalid first load that starts not ready.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sluice_test_support::free_port;

const SLUICE: &str = env!("CARGO_BIN_EXE_sluice");
const WAIT: Duration = Duration::from_secs(20);

/// A GatewayClass, a Gateway on `port` and a route that redirects `/old` (no backend needed).
fn config(port: u16, redirect_host: &str) -> String {
    format!(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: GatewayClass\nmetadata: {{name: sluice}}\n\
         spec: {{controllerName: sluice.dev/gateway-controller}}\n---\n\
         apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {{name: gw}}\n\
         spec:\n  gatewayClassName: sluice\n  listeners:\n  - {{name: http, port: {port}, protocol: HTTP}}\n---\n\
         apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: old}}\n\
         spec:\n  parentRefs: [{{name: gw}}]\n  rules:\n  - matches: [{{path: {{value: /old}}}}]\n    \
         filters:\n    - {{type: RequestRedirect, requestRedirect: {{hostname: {redirect_host}}}}}\n"
    )
}

/// The same route with a filter a v1.6.1 cluster refuses (percent and fraction both set).
const REFUSED_ROUTE: &str = "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\n\
    metadata: {name: old}\nspec:\n  rules:\n  - filters:\n    - type: RequestMirror\n      \
    requestMirror: {backendRef: {name: shadow, port: 80}, percent: 10, fraction: {numerator: 1}}\n";

fn validate(path: &Path) -> (i32, String) {
    let out = Command::new(SLUICE)
        .args(["validate", "--config"])
        .arg(path)
        .output()
        .unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8(out.stdout).unwrap(),
    )
}

struct Sluice {
    child: Child,
    admin: u16,
}

impl Sluice {
    fn start(config: &Path) -> Sluice {
        let admin = free_port();
        let child = Command::new(SLUICE)
            .arg("--config")
            .arg(config)
            .args(["--admin-address", &format!("127.0.0.1:{admin}")])
            .args([
                "--listen-address",
                "127.0.0.1",
                "--threads",
                "1",
                "--log-level",
                "warn",
                // A port freed mid-test is bound again within half a second.
                "--bind-retry-max",
                "500ms",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        Sluice { child, admin }
    }

    /// `(status, body)` of an admin page, once the admin listener answers.
    fn admin(&self, page: &str) -> (u16, String) {
        get(self.admin, page).unwrap()
    }

    /// Polls until `check` holds for an admin page.
    fn wait_for(&self, page: &str, check: impl Fn(u16, &str) -> bool) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some((status, body)) = get(self.admin, page) {
                if check(status, &body) {
                    return body;
                }
                assert!(Instant::now() < deadline, "{page}: {status} {body}");
            }
            assert!(Instant::now() < deadline, "{page} never answered");
            #[allow(
                clippy::disallowed_methods,
                reason = "a plain #[test] polling a child process, no runtime to block"
            )]
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Sluice {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A minimal HTTP/1.1 GET, so these tests need no async runtime: `None` until something listens.
fn get(port: u16, path: &str) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let status = response.split(' ').nth(1)?.parse().ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    let location = head
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("location:"))
        .map(|l| format!("{l}\n"))
        .unwrap_or_default();
    Some((status, format!("{location}{body}")))
}

#[test]
fn validate_exits_zero_with_a_summary_and_one_with_every_error() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.yaml");
    std::fs::write(&good, config(8080, "new.example.com")).unwrap();
    let (code, out) = validate(&good);
    assert_eq!(code, 0, "{out}");
    assert_eq!(
        out,
        format!(
            "{}: valid: 1 Gateway, 1 GatewayClass, 1 HTTPRoute (0 warnings)\n",
            good.display()
        )
    );

    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        format!("{}---\n{REFUSED_ROUTE}", config(8080, "new.example.com"))
            .replace("kind: GatewayClass", "kind: GatewayClas"),
    )
    .unwrap();
    let (code, out) = validate(&bad);
    assert_eq!(code, 1, "{out}");
    let b = bad.display();
    assert_eq!(
        out,
        format!(
            "{b}:1: GatewayClas default/sluice: no matches for kind \"GatewayClas\" in version \
             \"gateway.networking.k8s.io/v1\" (did you mean \"GatewayClass\"?)\n\
             {b}:31: HTTPRoute default/old: spec.rules[0].filters[0].requestMirror: Only one of \
             percent or fraction may be specified in HTTPRequestMirrorFilter\n"
        )
    );

    let (code, _) = validate(&dir.path().join("missing.yaml"));
    assert_eq!(code, 1);
}

#[test]
fn a_missing_config_path_exits_one_at_once_naming_it() {
    let started = Instant::now();
    let out = Command::new(SLUICE)
        .args([
            "--config",
            "/nonexistent/sluice.yaml",
            "--admin-address",
            "127.0.0.1:0",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains("/nonexistent/sluice.yaml: no such file or directory"),
        "{stderr}"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[test]
fn a_refused_reload_keeps_serving_the_last_good_snapshot_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let file = dir.path().join("gw.yaml");
    std::fs::write(&file, config(port, "new.example.com")).unwrap();
    let sluice = Sluice::start(&file);
    sluice.wait_for("/readyz", |status, _| status == 200);
    let (status, location) = get(port, "/old").unwrap();
    assert_eq!(status, 302);
    assert!(location.contains("new.example.com"), "{location}");

    // A refused edit: the second document is invalid, so the whole load is, including the
    // hostname change of the first.
    let refused = format!(
        "{}---\n{}",
        config(port, "changed.example.com"),
        REFUSED_ROUTE.replace("name: old", "name: mirror")
    );
    std::fs::write(&file, refused).unwrap();
    let metrics = sluice.wait_for("/metrics", |_, body| {
        body.contains("sluice_config_reloads_total{result=\"rejected\"} 1")
    });
    assert!(metrics.contains("sluice_config_reloads_total{result=\"rejected\"} 1"));
    let (_, config_page) = sluice.admin("/config");
    assert!(
        config_page.contains("HTTPRoute default/mirror: spec.rules[0].filters[0].requestMirror: Only one of percent or fraction may be specified in HTTPRequestMirrorFilter"),
        "{config_page}"
    );
    assert_eq!(
        sluice.admin("/readyz").0,
        200,
        "still serving the last good snapshot"
    );
    let (status, location) = get(port, "/old").unwrap();
    assert_eq!(status, 302);
    assert!(location.contains("new.example.com"), "{location}");
}

#[test]
fn an_invalid_first_config_starts_not_ready_and_a_fix_is_picked_up() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let file = dir.path().join("gw.yaml");
    std::fs::write(
        &file,
        config(port, "new.example.com")
            .replace("backendRefs", "x")
            .replace("parentRefs", "parentRef"),
    )
    .unwrap();
    let sluice = Sluice::start(&file);
    let body = sluice.wait_for("/readyz", |status, _| status == 503);
    assert!(
        body.contains("spec.parentRef: unknown field \"parentRef\" (did you mean \"parentRefs\"?)"),
        "{body}"
    );
    let (_, config_page) = sluice.admin("/config");
    assert!(config_page.contains("parentRef"), "{config_page}");

    std::fs::write(&file, config(port, "new.example.com")).unwrap();
    sluice.wait_for("/readyz", |status, _| status == 200);
    assert_eq!(get(port, "/old").unwrap().0, 302);
}

#[test]
fn a_port_taken_by_another_process_is_not_ready_then_recovers_once_freed() {
    let dir = tempfile::tempdir().unwrap();
    let squatter = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = squatter.local_addr().unwrap().port();
    let file = dir.path().join("gw.yaml");
    std::fs::write(&file, config(port, "new.example.com")).unwrap();
    let sluice = Sluice::start(&file);

    let body = sluice.wait_for("/readyz", |status, body| {
        status == 503 && body.contains("cannot listen")
    });
    assert!(
        body.contains(&format!("cannot listen on 127.0.0.1:{port}")),
        "{body}"
    );
    let status = sluice.wait_for("/status", |_, body| body.contains("PortUnavailable"));
    assert!(
        status.contains("status: 'False'") || status.contains("status: \"False\""),
        "{status}"
    );

    drop(squatter);
    sluice.wait_for("/readyz", |status, _| status == 200);
    let status = sluice.admin("/status").1;
    assert!(!status.contains("PortUnavailable"), "{status}");
    assert_eq!(get(port, "/old").unwrap().0, 302);
}
