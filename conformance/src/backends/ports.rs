//! Which ports an echo-basic container serves, by mode (FORMAT.md §1.4, §2.1-2.3), from its env and the
//! TLS material its volumes mount.

use std::collections::BTreeMap;
use std::sync::Arc;

use sluice_gateway::echo::{
    grpc_tls_server_config, tcp_tls_server_config, tls_server_config, EchoPort, TcpPorts,
};

use super::BackendError;

/// A container's environment and a reader for the files it mounts (`None`: not mounted).
pub(super) struct Container<'a> {
    pub(super) pod: &'a str,
    pub(super) env: &'a BTreeMap<String, String>,
    pub(super) mounted: &'a dyn Fn(&str) -> Option<String>,
}

impl Container<'_> {
    /// `var` as a port number, `default` when unset.
    pub(super) fn port(&self, var: &'static str, default: u16) -> Result<u16, BackendError> {
        match self.env.get(var) {
            None => Ok(default),
            Some(v) => v.parse().map_err(|_| BackendError::BadPort {
                pod: self.pod.to_owned(),
                what: var,
                value: v.clone(),
            }),
        }
    }

    fn tls_error(&self, source: sluice_gateway::echo::EchoError) -> BackendError {
        BackendError::Tls {
            pod: self.pod.to_owned(),
            source,
        }
    }

    /// Every (port, server) the container listens on.
    pub(super) fn echo_ports(&self) -> Result<Vec<(u16, EchoPort)>, BackendError> {
        let mounted = |var: &str| (self.mounted)(var);
        // gRPC and TCP modes read their key from TLS_SERVER_PRIV_KEY, HTTP mode from TLS_SERVER_PRIVKEY.
        let stream_tls = mounted("TLS_SERVER_CERT").zip(mounted("TLS_SERVER_PRIV_KEY"));
        if self.env.contains_key("GRPC_ECHO_SERVER") {
            let mut ports = vec![(self.port("HTTP_PORT", 3000)?, EchoPort::Grpc)];
            if let Some((cert, key)) = stream_tls {
                let config = grpc_tls_server_config(&cert, &key).map_err(|e| self.tls_error(e))?;
                ports.push((self.port("HTTPS_PORT", 8443)?, EchoPort::GrpcTls(config)));
            }
            return Ok(ports);
        }
        if self.env.contains_key("TCP_ECHO_SERVER") {
            let tcp_port = self.port("TCP_PORT", 3000)?;
            let tls_port = self.port("TLS_PORT", 8443)?;
            let names = Arc::new(TcpPorts {
                tcp: tcp_port.to_string(),
                tls: match stream_tls {
                    Some(_) => tls_port.to_string(),
                    None => String::new(),
                },
            });
            let mut ports = vec![(tcp_port, EchoPort::Tcp(names.clone()))];
            if let Some((cert, key)) = stream_tls {
                let config = tcp_tls_server_config(&cert, &key).map_err(|e| self.tls_error(e))?;
                ports.push((tls_port, EchoPort::TcpTls(names, config)));
            }
            return Ok(ports);
        }
        let mut ports = vec![
            (self.port("HTTP_PORT", 3000)?, EchoPort::Http),
            (self.port("H2C_PORT", 3001)?, EchoPort::H2c),
        ];
        if let (Some(cert), Some(key)) = (mounted("TLS_SERVER_CERT"), mounted("TLS_SERVER_PRIVKEY"))
        {
            let client_ca = mounted("TLS_CLIENT_CACERTS");
            let config = tls_server_config(&cert, &key, client_ca.as_deref())
                .map_err(|e| self.tls_error(e))?;
            ports.push((self.port("HTTPS_PORT", 8443)?, EchoPort::Https(config)));
        }
        Ok(ports)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn kinds(ports: &[(u16, EchoPort)]) -> Vec<(u16, &'static str)> {
        ports
            .iter()
            .map(|(n, kind)| {
                let name = match kind {
                    EchoPort::Http => "http",
                    EchoPort::H2c => "h2c",
                    EchoPort::Https(_) => "https",
                    EchoPort::Grpc => "grpc",
                    EchoPort::GrpcTls(_) => "grpc-tls",
                    EchoPort::Tcp(_) => "tcp",
                    EchoPort::TcpTls(..) => "tcp-tls",
                };
                (*n, name)
            })
            .collect()
    }

    #[test]
    fn each_mode_serves_its_ports_and_tls_only_with_its_key_variable() {
        let (_, cert, key) = crate::test_pods::ca_and_leaf("abc.example.com");
        let files = BTreeMap::from([("/crt", cert), ("/key", key)]);
        let mounted = |path: &str| files.get(path).cloned();
        let ports_of = |pairs: &[(&str, &str)]| {
            let env = env(pairs);
            let container = Container {
                pod: "p",
                env: &env,
                mounted: &|var: &str| env.get(var).and_then(|path| mounted(path)),
            };
            container.echo_ports().map(|ports| kinds(&ports))
        };
        let stream_tls = [("TLS_SERVER_CERT", "/crt"), ("TLS_SERVER_PRIV_KEY", "/key")];
        assert_eq!(
            ports_of(&[("GRPC_ECHO_SERVER", "1")]).unwrap(),
            [(3000, "grpc")]
        );
        assert_eq!(
            ports_of(&[&[("GRPC_ECHO_SERVER", "1")][..], &stream_tls].concat()).unwrap(),
            [(3000, "grpc"), (8443, "grpc-tls")]
        );
        assert_eq!(
            ports_of(
                &[
                    &[("TCP_ECHO_SERVER", "1"), ("TCP_PORT", "4000")][..],
                    &stream_tls
                ]
                .concat()
            )
            .unwrap(),
            [(4000, "tcp"), (8443, "tcp-tls")]
        );
        // HTTP mode's key variable is TLS_SERVER_PRIVKEY: the stream modes' one gives no HTTPS port.
        assert_eq!(
            ports_of(&stream_tls).unwrap(),
            [(3000, "http"), (3001, "h2c")]
        );
        assert!(matches!(
            ports_of(&[("TCP_ECHO_SERVER", "1"), ("TCP_PORT", "x")]),
            Err(BackendError::BadPort {
                what: "TCP_PORT",
                ..
            })
        ));
    }
}
