//! A certificate authority made for one test, and a server certificate it
//! signed for 127.0.0.1 and localhost, as PEM files: a server the test
//! starts serves TLS that a client trusts only when told to, through
//! `SSL_CERT_FILE`, as a private CA is trusted in production.

use std::fs;
use std::path::PathBuf;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use tempfile::TempDir;

pub struct TestCertificates {
    dir: TempDir,
}

impl TestCertificates {
    pub fn new() -> Self {
        let mut ca = CertificateParams::new(Vec::<String>::new()).expect("valid CA parameters");
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(rcgen::DnType::CommonName, "somework test CA");
        let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().expect("a CA key"))
            .expect("a self-signed CA");
        let server_key = KeyPair::generate().expect("a server key");
        let server = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
            .expect("valid server parameters")
            .signed_by(&server_key, &ca)
            .expect("a server certificate signed by the CA");

        let dir = tempfile::tempdir().expect("cannot create a temporary directory");
        let write = |name: &str, pem: String| {
            fs::write(dir.path().join(name), pem).expect("cannot write a PEM file");
        };
        write("ca.pem", ca.pem());
        write("server.pem", server.pem());
        write("server-key.pem", server_key.serialize_pem());
        Self { dir }
    }

    /// The CA's certificate: what `SSL_CERT_FILE` names to trust it.
    pub fn ca_file(&self) -> PathBuf {
        self.path("ca.pem")
    }

    /// The server's certificate, signed by the CA.
    pub fn server_cert_file(&self) -> PathBuf {
        self.path("server.pem")
    }

    pub fn server_key_file(&self) -> PathBuf {
        self.path("server-key.pem")
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

impl Default for TestCertificates {
    fn default() -> Self {
        Self::new()
    }
}
