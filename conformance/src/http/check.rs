//! Judging one HTTP attempt against an `expect` (FORMAT.md §4.4, upstream `CompareRoundTrip`).

use crate::case::{Expect, ExpectBackend};

use super::{EchoJson, Received};

/// The outcome of one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Pass,
    /// Not (yet) as expected; convergence may retry.
    NotYet(String),
    /// Fails the whole entry at once (e.g. a 200 where `notStatus: 200`).
    Fatal(String),
}

/// The request the backend saw, as reported by its echo body (empty when the answer is not an echo).
#[derive(Debug, Clone, Default)]
pub struct Captured {
    pub echo: EchoJson,
    pub is_echo: bool,
}

/// Checks one response. `expected_path` is the path the entry expects the backend to see (request id and
/// `{uuid}` substitutions applied); `sent_method` fills the captured method of a non-echo answer.
pub fn check_response(
    expect: &Expect,
    result: &Result<Received, String>,
    expected_path: &str,
    sent_method: &str,
    client_cert_pems: &[String],
) -> (Verdict, Captured) {
    let mut captured = Captured::default();
    if expect.transport_error {
        return match result {
            Err(_) => (Verdict::Pass, captured),
            Ok(r) => (
                Verdict::NotYet(format!(
                    "got HTTP {} instead of a transport error",
                    r.status
                )),
                captured,
            ),
        };
    }
    let response = match result {
        Ok(response) => response,
        Err(error) => {
            return (
                Verdict::NotYet(format!("transport error: {error}")),
                captured,
            )
        }
    };
    if let Some(not) = expect.not_status {
        // Only for the report: which pod answered what must never be answered.
        if let Ok(echo) = serde_json::from_str::<EchoJson>(&response.body) {
            captured.echo = echo;
            captured.is_echo = true;
        }
        return match response.status {
            s if s == not => (
                Verdict::Fatal(format!("got HTTP {s}, which must never be answered")),
                captured,
            ),
            408 | 504 => (
                Verdict::NotYet(format!("got HTTP {}", response.status)),
                captured,
            ),
            _ => (Verdict::Pass, captured),
        };
    }
    let expected_codes = expect
        .status
        .as_ref()
        .map(|s| s.codes())
        .unwrap_or_else(|| vec![200]);
    // A timeout answers any expected timeout, whichever of the two codes (upstream `IsTimeoutError`).
    let is_timeout = |code: &u16| matches!(code, 408 | 504);
    if is_timeout(&response.status) && expected_codes.iter().any(is_timeout) {
        return (Verdict::Pass, captured);
    }
    if !expected_codes.contains(&response.status) {
        return (
            Verdict::NotYet(format!(
                "expected status {expected_codes:?}, got {} (body: {})",
                response.status,
                snippet(&response.body)
            )),
            captured,
        );
    }
    if let Some(protocol) = &expect.protocol {
        if *protocol != response.version {
            return (
                Verdict::NotYet(format!(
                    "expected response protocol {protocol}, got {}",
                    response.version
                )),
                captured,
            );
        }
    }
    let content_type = header(response, "content-type").unwrap_or_default();
    if content_type == "application/json" {
        match serde_json::from_str::<EchoJson>(&response.body) {
            Ok(echo) => {
                captured.echo = echo;
                captured.is_echo = true;
            }
            Err(error) => {
                return (
                    Verdict::NotYet(format!(
                        "unparseable echo body ({error}): {}",
                        snippet(&response.body)
                    )),
                    captured,
                )
            }
        }
    } else {
        captured.echo.method = sent_method.to_owned();
    }
    let verdict = match response.status {
        200 | 204 => check_ok(expect, response, &captured, expected_path, client_cert_pems),
        300..=305 | 307 | 308 => check_redirect(expect, response),
        _ => Ok(()),
    };
    match verdict {
        Ok(()) => (Verdict::Pass, captured),
        Err(reason) => (Verdict::NotYet(reason), captured),
    }
}

fn check_ok(
    expect: &Expect,
    response: &Received,
    captured: &Captured,
    expected_path: &str,
    client_cert_pems: &[String],
) -> Result<(), String> {
    let echo = &captured.echo;
    if let Some(request) = &expect.request {
        if echo.path != expected_path {
            return Err(format!(
                "backend saw path {:?}, expected {expected_path:?}",
                echo.path
            ));
        }
        if let Some(method) = &request.method {
            if &echo.method != method {
                return Err(format!(
                    "backend saw method {:?}, expected {method:?}",
                    echo.method
                ));
            }
        }
        if let Some(host) = &request.host {
            if &echo.host != host {
                return Err(format!(
                    "backend saw host {:?}, expected {host:?}",
                    echo.host
                ));
            }
        }
        for (name, want) in &request.headers {
            match captured_header(echo, name) {
                None => {
                    return Err(format!(
                        "backend did not receive header {name} (expected {want:?})"
                    ))
                }
                Some(values) if values.join(",") != *want => {
                    return Err(format!(
                        "backend saw header {name}: {:?}, expected {want:?}",
                        values.join(",")
                    ))
                }
                Some(_) => {}
            }
        }
        for name in &request.absent_headers {
            if let Some(values) = captured_header(echo, name) {
                return Err(format!(
                    "backend received header {name}: {values:?}, expected it absent"
                ));
            }
        }
        if let Some(sni) = &request.sni {
            let seen = echo
                .tls
                .as_ref()
                .map(|t| t.server_name.as_str())
                .unwrap_or("");
            if seen != sni {
                return Err(format!("backend TLS saw SNI {seen:?}, expected {sni:?}"));
            }
        }
        if request.client_cert.is_some() {
            let peer = echo
                .tls
                .as_ref()
                .map(|t| t.peer_certificates.clone())
                .unwrap_or_default();
            let norm = |s: &str| s.replace("\r\n", "\n").trim().to_owned();
            if !client_cert_pems
                .iter()
                .any(|want| peer.iter().any(|p| norm(p) == norm(want)))
            {
                return Err("backend did not see the expected client certificate".to_owned());
            }
        }
        if let Some(port) = &request.http_port {
            if &echo.http_port != port {
                return Err(format!(
                    "backend httpPort {:?}, expected {port:?}",
                    echo.http_port
                ));
            }
        }
    }
    match &expect.backend {
        Some(ExpectBackend::None) if !echo.namespace.is_empty() || !echo.path.is_empty() => {
            return Err(format!(
                "expected an answer from the gateway itself, but backend pod {:?} echoed it",
                echo.pod
            ));
        }
        Some(ExpectBackend::Some(backend)) => {
            if let Some(namespace) = &backend.namespace {
                if &echo.namespace != namespace {
                    return Err(format!(
                        "answered by namespace {:?} (pod {:?}), expected {namespace:?}",
                        echo.namespace, echo.pod
                    ));
                }
            }
            if let Some(service) = &backend.service {
                if !echo.pod.starts_with(service.as_str()) {
                    return Err(format!(
                        "answered by pod {:?}, expected a pod of {service}",
                        echo.pod
                    ));
                }
            }
        }
        Some(ExpectBackend::None) | None => {}
    }
    if let Some(expected) = &expect.response {
        let strip = |s: &str| {
            if expected.ignore_whitespace {
                s.replace(' ', "")
            } else {
                s.to_owned()
            }
        };
        for (name, want) in &expected.headers {
            let got = response_header_joined(response, name)
                .ok_or_else(|| format!("response lacks header {name} (expected {want:?})"))?;
            if strip(&got) != strip(want) {
                return Err(format!(
                    "response header {name}: {got:?}, expected {want:?}"
                ));
            }
        }
        for (name, allowed) in &expected.valid_header_values {
            let got = response_header_joined(response, name).ok_or_else(|| {
                format!("response lacks header {name} (expected one of {allowed:?})")
            })?;
            if !allowed.iter().any(|a| strip(a) == strip(&got)) {
                return Err(format!(
                    "response header {name}: {got:?}, expected one of {allowed:?}"
                ));
            }
        }
        for name in &expected.absent_headers {
            if let Some(got) = response_header_joined(response, name) {
                return Err(format!(
                    "response has header {name}: {got:?}, expected it absent"
                ));
            }
        }
    }
    if let Some(header_name) = &expect.pod_prefix_from_request_header {
        let values = captured_header(echo, header_name).unwrap_or_default();
        match values.as_slice() {
            [prefix] if echo.pod.starts_with(prefix.as_str()) => {}
            _ => {
                return Err(format!(
                    "pod {:?} does not start with the single {header_name} header value {values:?}",
                    echo.pod
                ))
            }
        }
    }
    Ok(())
}

fn check_redirect(expect: &Expect, response: &Received) -> Result<(), String> {
    let Some(redirect) = &expect.redirect else {
        return Ok(());
    };
    let location = header(response, "location").ok_or("redirect without a Location header")?;
    let url = url::Url::parse(&location)
        .map_err(|e| format!("Location {location:?} is not a URL: {e}"))?;
    if let Some(scheme) = &redirect.scheme {
        if url.scheme() != scheme {
            return Err(format!(
                "Location {location:?}: scheme {:?}, expected {scheme:?}",
                url.scheme()
            ));
        }
    }
    if let Some(path) = &redirect.path {
        if url.path() != path {
            return Err(format!(
                "Location {location:?}: path {:?}, expected {path:?}",
                url.path()
            ));
        }
    }
    if let Some(host) = &redirect.host {
        if url.host_str().unwrap_or_default() != host {
            return Err(format!(
                "Location {location:?}: host {:?}, expected {host:?}",
                url.host_str()
            ));
        }
    }
    // `url` drops a port equal to the scheme default, which is exactly what "empty or default" accepts.
    let port = url.port().map(|p| p.to_string()).unwrap_or_default();
    match &redirect.port {
        Some(want)
            if &port != want && !(port.is_empty() && is_default_port(url.scheme(), want)) =>
        {
            Err(format!(
                "Location {location:?}: port {port:?}, expected {want:?}"
            ))
        }
        None if !port.is_empty() => Err(format!(
            "Location {location:?}: port {port:?}, expected none (the scheme default)"
        )),
        _ => Ok(()),
    }
}

fn is_default_port(scheme: &str, port: &str) -> bool {
    matches!((scheme, port), ("http", "80") | ("https", "443"))
}

fn captured_header(echo: &EchoJson, name: &str) -> Option<Vec<String>> {
    echo.headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.clone())
}

fn header(response: &Received, name: &str) -> Option<String> {
    response
        .headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.clone())
}

fn response_header_joined(response: &Received, name: &str) -> Option<String> {
    let values: Vec<&str> = response
        .headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
        .collect();
    (!values.is_empty()).then(|| values.join(","))
}

fn snippet(body: &str) -> String {
    let mut s: String = body.chars().take(160).collect();
    if body.chars().count() > 160 {
        s.push('…');
    }
    s.replace('\n', " ")
}

#[cfg(test)]
mod tests;
