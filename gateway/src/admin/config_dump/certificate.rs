//! What `/config` says about a served certificate: subject, issuer, names and validity, read from
//! the DER of the public certificate only, so no key material can ever reach the dump.
//!
//! Parsing is `x509-parser`'s; this module only picks the fields an operator checks and renders
//! them. A certificate it cannot read is reported in the dump, never fatal: it is still served.

use std::net::IpAddr;

use jiff::Timestamp;
use rustls::pki_types::CertificateDer;
use serde::Serialize;
use x509_parser::certificate::X509Certificate;
use x509_parser::error::X509Error;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::FromDer;
use x509_parser::time::ASN1Time;

/// A certificate as `/config` prints it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub(crate) enum CertificateSummary {
    Read(CertificateInfo),
    Unreadable {
        /// Why the end-entity certificate could not be read (it is still served as loaded).
        unreadable: String,
    },
}

/// The fields of the end-entity certificate an operator checks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CertificateInfo {
    /// `CN=…, O=…` in certificate order (x509-parser's rendering of a Name).
    pub(crate) subject: String,
    pub(crate) issuer: String,
    /// DNS names and IP addresses of the subjectAltName extension.
    pub(crate) subject_alt_names: Vec<String>,
    /// RFC 3339, UTC.
    pub(crate) not_before: String,
    pub(crate) not_after: String,
    /// Certificates in the served chain, end-entity included.
    pub(crate) chain_length: usize,
}

/// Summarizes `chain[0]`, the certificate a client is shown first.
pub(crate) fn summarize(chain: &[CertificateDer<'_>]) -> CertificateSummary {
    let Some(end_entity) = chain.first() else {
        return CertificateSummary::Unreadable {
            unreadable: "empty certificate chain".into(),
        };
    };
    match read(end_entity.as_ref(), chain.len()) {
        Ok(info) => CertificateSummary::Read(info),
        Err(e) => CertificateSummary::Unreadable {
            unreadable: e.to_string(),
        },
    }
}

#[derive(Debug, thiserror::Error)]
enum ReadError {
    #[error("not an X.509 certificate: {0}")]
    Certificate(X509Error),
    #[error("malformed subjectAltName: {0}")]
    AltNames(X509Error),
    #[error("validity time out of range: {0}")]
    Time(jiff::Error),
}

fn read(der: &[u8], chain_length: usize) -> Result<CertificateInfo, ReadError> {
    // Bytes after the certificate are ignored, as rustls ignores them when it serves the chain.
    let (_, certificate) =
        X509Certificate::from_der(der).map_err(|e| ReadError::Certificate(X509Error::from(e)))?;
    let validity = certificate.validity();
    Ok(CertificateInfo {
        subject: certificate.subject().to_string(),
        issuer: certificate.issuer().to_string(),
        subject_alt_names: alt_names(&certificate)?,
        not_before: rfc3339(validity.not_before)?,
        not_after: rfc3339(validity.not_after)?,
        chain_length,
    })
}

/// The DNS and IP entries of the subjectAltName extension, if the certificate has one.
fn alt_names(certificate: &X509Certificate<'_>) -> Result<Vec<String>, ReadError> {
    let Some(extension) = certificate
        .subject_alternative_name()
        .map_err(ReadError::AltNames)?
    else {
        return Ok(Vec::new());
    };
    Ok(extension
        .value
        .general_names
        .iter()
        .filter_map(|name| match name {
            GeneralName::DNSName(dns) => Some((*dns).to_string()),
            GeneralName::IPAddress(ip) => ip_address(ip),
            // Email, URI and other names do not select a listener; leave them out.
            _ => None,
        })
        .collect())
}

/// An `iPAddress` entry is the raw 4 or 16 address bytes (RFC 5280 §4.2.1.6).
fn ip_address(bytes: &[u8]) -> Option<String> {
    if let Ok(v4) = <[u8; 4]>::try_from(bytes) {
        Some(IpAddr::from(v4).to_string())
    } else if let Ok(v6) = <[u8; 16]>::try_from(bytes) {
        Some(IpAddr::from(v6).to_string())
    } else {
        None
    }
}

/// UTCTime and GeneralizedTime alike, as RFC 3339 in UTC (`2024-01-02T00:00:00Z`).
fn rfc3339(time: ASN1Time) -> Result<String, ReadError> {
    Timestamp::from_second(time.timestamp())
        .map(|t| t.to_string())
        .map_err(ReadError::Time)
}

#[cfg(test)]
mod tests;
