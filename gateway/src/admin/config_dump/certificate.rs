//! What `/config` says about a served certificate: subject, issuer, names and validity, read from
//! the DER of the public certificate only, so no key material can ever reach the dump.
//!
//! A small DER walker rather than an X.509 crate: the dump needs five fields of the
//! `TBSCertificate` (RFC 5280 §4.1), and a certificate it cannot read is reported, not fatal.

use std::fmt::Write as _;
use std::net::IpAddr;

use rustls::pki_types::CertificateDer;
use serde::Serialize;

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
    /// `CN=…, O=…` in certificate order.
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
    match read(end_entity.as_ref()) {
        Ok(mut info) => {
            info.chain_length = chain.len();
            CertificateSummary::Read(info)
        }
        Err(e) => CertificateSummary::Unreadable {
            unreadable: e.to_string(),
        },
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum DerError {
    #[error("truncated DER")]
    Truncated,
    #[error("unexpected DER tag {found:#04x} where {expected} was expected")]
    Tag { expected: &'static str, found: u8 },
    #[error("DER length over 4 bytes")]
    Length,
    #[error("malformed time {0:?}")]
    Time(String),
}

const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const OID: u8 = 0x06;
const BOOLEAN: u8 = 0x01;
const OCTET_STRING: u8 = 0x04;
const UTC_TIME: u8 = 0x17;
const GENERALIZED_TIME: u8 = 0x18;
/// `[0] EXPLICIT Version`, `[3] EXPLICIT Extensions` of `TBSCertificate`.
const VERSION: u8 = 0xa0;
const EXTENSIONS: u8 = 0xa3;
/// `GeneralName` choices `[2] dNSName` and `[7] iPAddress` (implicit, primitive).
const DNS_NAME: u8 = 0x82;
const IP_ADDRESS: u8 = 0x87;
/// 2.5.29.17, subjectAltName.
const SUBJECT_ALT_NAME: &[u8] = &[0x55, 0x1d, 0x11];

fn read(der: &[u8]) -> Result<CertificateInfo, DerError> {
    let certificate = Reader::new(der).expect(SEQUENCE, "Certificate")?;
    let mut tbs = Reader::new(Reader::new(certificate).expect(SEQUENCE, "TBSCertificate")?);
    if tbs.peek() == Some(VERSION) {
        tbs.any()?;
    }
    tbs.any()?; // serialNumber
    tbs.expect(SEQUENCE, "signature AlgorithmIdentifier")?;
    let issuer = name(tbs.expect(SEQUENCE, "issuer Name")?)?;
    let mut validity = Reader::new(tbs.expect(SEQUENCE, "Validity")?);
    let not_before = time(validity.any()?)?;
    let not_after = time(validity.any()?)?;
    let subject = name(tbs.expect(SEQUENCE, "subject Name")?)?;
    tbs.expect(SEQUENCE, "SubjectPublicKeyInfo")?;
    let mut subject_alt_names = Vec::new();
    while let Some(tag) = tbs.peek() {
        let (_, content) = tbs.any()?;
        if tag == EXTENSIONS {
            subject_alt_names = alt_names(content)?;
        }
    }
    Ok(CertificateInfo {
        subject,
        issuer,
        subject_alt_names,
        not_before,
        not_after,
        chain_length: 1,
    })
}

/// `Name ::= SEQUENCE OF SET OF AttributeTypeAndValue`, as `CN=a, O=b`.
fn name(content: &[u8]) -> Result<String, DerError> {
    let mut parts = Vec::new();
    let mut rdns = Reader::new(content);
    while !rdns.is_empty() {
        let mut set = Reader::new(rdns.expect(SET, "RelativeDistinguishedName")?);
        while !set.is_empty() {
            let mut pair = Reader::new(set.expect(SEQUENCE, "AttributeTypeAndValue")?);
            let oid = pair.expect(OID, "attribute type")?;
            let (_, value) = pair.any()?;
            parts.push(format!(
                "{}={}",
                attribute_name(oid),
                String::from_utf8_lossy(value)
            ));
        }
    }
    Ok(parts.join(", "))
}

fn attribute_name(oid: &[u8]) -> String {
    match oid {
        [0x55, 0x04, 0x03] => "CN".into(),
        [0x55, 0x04, 0x06] => "C".into(),
        [0x55, 0x04, 0x07] => "L".into(),
        [0x55, 0x04, 0x08] => "ST".into(),
        [0x55, 0x04, 0x0a] => "O".into(),
        [0x55, 0x04, 0x0b] => "OU".into(),
        _ => dotted(oid),
    }
}

/// An OID in dotted notation, for attribute types without a short name.
fn dotted(oid: &[u8]) -> String {
    let mut out = String::new();
    let mut value: u64 = 0;
    for b in oid {
        value = (value << 7) | u64::from(b & 0x7f);
        if b & 0x80 != 0 {
            continue;
        }
        if out.is_empty() {
            let first = (value / 40).min(2);
            let _ = write!(out, "{first}.{}", value - first * 40);
        } else {
            let _ = write!(out, ".{value}");
        }
        value = 0;
    }
    out
}

/// The DNS and IP entries of the subjectAltName extension, if the certificate has one.
fn alt_names(explicit: &[u8]) -> Result<Vec<String>, DerError> {
    let mut extensions = Reader::new(Reader::new(explicit).expect(SEQUENCE, "Extensions")?);
    while !extensions.is_empty() {
        let mut extension = Reader::new(extensions.expect(SEQUENCE, "Extension")?);
        let oid = extension.expect(OID, "extnID")?;
        if extension.peek() == Some(BOOLEAN) {
            extension.any()?;
        }
        let value = extension.expect(OCTET_STRING, "extnValue")?;
        if oid != SUBJECT_ALT_NAME {
            continue;
        }
        let mut names = Reader::new(Reader::new(value).expect(SEQUENCE, "GeneralNames")?);
        let mut out = Vec::new();
        while !names.is_empty() {
            match names.any()? {
                (DNS_NAME, dns) => out.push(String::from_utf8_lossy(dns).into_owned()),
                (IP_ADDRESS, ip) => {
                    if let Ok(v4) = <[u8; 4]>::try_from(ip) {
                        out.push(IpAddr::from(v4).to_string());
                    } else if let Ok(v6) = <[u8; 16]>::try_from(ip) {
                        out.push(IpAddr::from(v6).to_string());
                    }
                }
                // Email, URI and other names do not select a listener; leave them out.
                _ => {}
            }
        }
        return Ok(out);
    }
    Ok(Vec::new())
}

/// `UTCTime` (`YYMMDDHHMMSSZ`) or `GeneralizedTime` (`YYYYMMDDHHMMSSZ`) as RFC 3339.
fn time((tag, content): (u8, &[u8])) -> Result<String, DerError> {
    let text = std::str::from_utf8(content).map_err(|_| DerError::Time(format!("{content:?}")))?;
    let malformed = || DerError::Time(text.to_string());
    let digits = text.strip_suffix('Z').ok_or_else(malformed)?;
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(malformed());
    }
    let (century, rest) = match (tag, digits.len()) {
        // RFC 5280 §4.1.2.5.1: YY >= 50 is 19YY, else 20YY.
        (UTC_TIME, 12) => {
            let yy = digits.get(..2).ok_or_else(malformed)?;
            (if yy >= "50" { "19" } else { "20" }, digits)
        }
        (GENERALIZED_TIME, 14) => digits.split_at(2),
        _ => return Err(malformed()),
    };
    let part = |range: std::ops::Range<usize>| rest.get(range).ok_or_else(malformed);
    Ok(format!(
        "{century}{}-{}-{}T{}:{}:{}Z",
        part(0..2)?,
        part(2..4)?,
        part(4..6)?,
        part(6..8)?,
        part(8..10)?,
        part(10..12)?
    ))
}

/// Reads one DER element after another from a byte slice.
struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8]) -> Reader<'a> {
        Reader { rest: bytes }
    }

    fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    fn peek(&self) -> Option<u8> {
        self.rest.first().copied()
    }

    /// The next element's tag and content.
    fn any(&mut self) -> Result<(u8, &'a [u8]), DerError> {
        let (&tag, rest) = self.rest.split_first().ok_or(DerError::Truncated)?;
        let (&first, mut rest) = rest.split_first().ok_or(DerError::Truncated)?;
        let len = if first < 0x80 {
            usize::from(first)
        } else {
            let count = usize::from(first & 0x7f);
            if count == 0 || count > 4 {
                return Err(DerError::Length);
            }
            let (bytes, after) = rest.split_at_checked(count).ok_or(DerError::Truncated)?;
            rest = after;
            bytes
                .iter()
                .fold(0usize, |len, b| (len << 8) | usize::from(*b))
        };
        let (content, after) = rest.split_at_checked(len).ok_or(DerError::Truncated)?;
        self.rest = after;
        Ok((tag, content))
    }

    /// The next element's content, which must carry `tag`.
    fn expect(&mut self, tag: u8, expected: &'static str) -> Result<&'a [u8], DerError> {
        match self.any()? {
            (found, content) if found == tag => Ok(content),
            (found, _) => Err(DerError::Tag { expected, found }),
        }
    }
}

#[cfg(test)]
mod tests;
