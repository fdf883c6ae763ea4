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
    let CertificateSummary::Unreadable { unreadable } =
        summarize(&[CertificateDer::from(vec![0x30, 0x05, 0x01])])
    else {
        panic!("read a truncated SEQUENCE as a certificate");
    };
    assert!(
        unreadable.starts_with("not an X.509 certificate: "),
        "{unreadable}"
    );
    assert_eq!(
        summarize(&[]),
        CertificateSummary::Unreadable {
            unreadable: "empty certificate chain".into()
        }
    );
}

#[test]
fn a_certificate_without_alt_names_reports_an_empty_list() {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    let mut subject = DistinguishedName::new();
    subject.push(DnType::CommonName, "no-san");
    params.distinguished_name = subject;
    let CertificateSummary::Read(info) = summarize(&[generated(params)]) else {
        panic!("unreadable");
    };
    assert_eq!(info.subject, "CN=no-san");
    assert!(info.subject_alt_names.is_empty());
    assert_eq!(info.chain_length, 1);
}

#[test]
fn unnamed_attribute_types_print_as_their_oid() {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    let mut subject = DistinguishedName::new();
    subject.push(DnType::CommonName, "a");
    subject.push(DnType::CustomDnType(vec![1, 3, 6, 1, 4, 1, 99999, 1]), "b");
    params.distinguished_name = subject;
    let CertificateSummary::Read(info) = summarize(&[generated(params)]) else {
        panic!("unreadable");
    };
    assert_eq!(info.subject, "CN=a, OID(1.3.6.1.4.1.99999.1)=b");
}
