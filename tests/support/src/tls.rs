//! A certificate authority made for one test, a server certificate it
//! signed for 127.0.0.1 and localhost, and a client certificate, as PEM
//! files: a server the test starts serves TLS that a client trusts only when
//! told to (through `SSL_CERT_FILE` or `OTEL_EXPORTER_OTLP_CERTIFICATE`), as
//! a private CA is trusted in production, and can ask the client for its
//! certificate (mutual TLS).

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
        let client_key = KeyPair::generate().expect("a client key");
        let mut client = CertificateParams::new(Vec::<String>::new()).expect("valid parameters");
        client
            .distinguished_name
            .push(rcgen::DnType::CommonName, "somework test client");
        client.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        let client = client
            .signed_by(&client_key, &ca)
            .expect("a client certificate signed by the CA");

        let dir = tempfile::tempdir().expect("cannot create a temporary directory");
        let write = |name: &str, pem: String| {
            fs::write(dir.path().join(name), pem).expect("cannot write a PEM file");
        };
        write("ca.pem", ca.pem());
        write("server.pem", server.pem());
        write("server-key.pem", server_key.serialize_pem());
        write("client.pem", client.pem());
        write("client-key.pem", client_key.serialize_pem());
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

    /// A client certificate signed by the CA, for mutual TLS.
    pub fn client_cert_file(&self) -> PathBuf {
        self.path("client.pem")
    }

    pub fn client_key_file(&self) -> PathBuf {
        self.path("client-key.pem")
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
