//! Certificate summaries of generated and fixed certificates.

#![allow(clippy::unwrap_used)]

use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair, SanType};

use super::*;

fn generated(params: CertificateParams) -> CertificateDer<'static> {
    let key = KeyPair::generate().unwrap();
    params.self_signed(&key).unwrap().der().clone()
}

#[test]
fn a_generated_certificate_reports_its_names_and_validity() {
    let mut params = CertificateParams::new(vec!["a.example.com".to_string()]).unwrap();
    params
        .subject_alt_names
        .push(SanType::IpAddress("192.0.2.7".parse().unwrap()));
    let mut subject = DistinguishedName::new();
    subject.push(DnType::CommonName, "a.example.com");
    subject.push(DnType::OrganizationName, "Sluice Test");
    params.distinguished_name = subject;
    params.not_before = rcgen::date_time_ymd(2024, 1, 2);
    // After 2049: GeneralizedTime, before: UTCTime; both forms are read.
    params.not_after = rcgen::date_time_ymd(2051, 3, 4);
    let der = generated(params);

    let CertificateSummary::Read(info) = summarize(&[der.clone(), der]) else {
        panic!("unreadable");
    };
    assert_eq!(info.subject, "CN=a.example.com, O=Sluice Test");
    assert_eq!(info.issuer, info.subject, "self-signed");
    assert_eq!(info.subject_alt_names, ["a.example.com", "192.0.2.7"]);
    assert_eq!(info.not_before, "2024-01-02T00:00:00Z");
    assert_eq!(info.not_after, "2051-03-04T00:00:00Z");
    assert_eq!(info.chain_length, 2);
}

#[test]
fn bytes_that_are_not_a_certificate_are_reported_not_fatal() {
    let summary = summarize(&[CertificateDer::from(vec![0x30, 0x05, 0x01])]);
    assert_eq!(
        summary,
        CertificateSummary::Unreadable {
            unreadable: "truncated DER".into()
        }
    );
    assert!(matches!(
        summarize(&[]),
        CertificateSummary::Unreadable { .. }
    ));
}

#[test]
fn unnamed_attribute_types_print_as_dotted_oids() {
    // 1.2.840.113549.1.9.1, emailAddress.
    assert_eq!(
        attribute_name(&[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x01]),
        "1.2.840.113549.1.9.1"
    );
}
