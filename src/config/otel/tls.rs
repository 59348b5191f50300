//! The TLS files of an OTLP exporter: trusted certificates and a client
//! identity whose key must belong to its certificate. Which files the
//! variables name is parsed first, without I/O ([`TlsFiles::from_env`]);
//! reading and checking them is a step of its own ([`TlsFiles::load`]).

use std::fmt;

use rustls::crypto::aws_lc_rs;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;

use super::SignalVars;
use crate::config::env::{ConfigError, Env};

/// The TLS files of one signal's exporter, read and checked at startup, so
/// that a wrong path stops the service instead of failing every export.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OtlpTls {
    /// `OTEL_EXPORTER_OTLP_[SIGNAL_]CERTIFICATE`: PEM certificates that
    /// verify the collector in place of the platform's roots (a private CA).
    pub trusted_certificates: Option<Vec<u8>>,
    /// `..._CLIENT_CERTIFICATE` and `..._CLIENT_KEY`, for a collector that
    /// asks for a client certificate (mutual TLS).
    pub client_identity: Option<ClientIdentity>,
}

/// A client certificate chain and its private key, as PEM. `Debug` leaves
/// the key out.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientIdentity {
    pub certificate_chain: Vec<u8>,
    pub private_key: Vec<u8>,
}

impl fmt::Debug for ClientIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientIdentity")
            .field("certificate_chain", &self.certificate_chain.len())
            .finish_non_exhaustive()
    }
}

const CERTIFICATES_FORM: &str = "the path of a readable PEM file of one or more certificates";
const KEY_FORM: &str = "the path of a readable PEM file with a private key";

const CLIENT_CERTIFICATE: &str = "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE";
const CLIENT_KEY: &str = "OTEL_EXPORTER_OTLP_CLIENT_KEY";

/// The TLS files one signal's variables name, none read yet: parsing the
/// variables stays apart from reading the files, which [`TlsFiles::load`]
/// does.
pub(super) struct TlsFiles {
    trusted: SignalOrGeneric,
    client_certificate: SignalOrGeneric,
    client_key: SignalOrGeneric,
}

impl TlsFiles {
    /// The files named by the signal's variables and the generic ones.
    pub(super) fn from_env(env: &Env<'_>, vars: &SignalVars) -> Self {
        let named = |signal, generic| SignalOrGeneric {
            generic: NamedFile::from_env(env, generic),
            signal: NamedFile::from_env(env, signal),
        };
        Self {
            trusted: named(vars.certificate, "OTEL_EXPORTER_OTLP_CERTIFICATE"),
            client_certificate: named(vars.client_certificate, CLIENT_CERTIFICATE),
            client_key: named(vars.client_key, CLIENT_KEY),
        }
    }

    /// Reads every named file and checks what it holds, then that the files
    /// suit `endpoint` (an `https://` one) and each other (a client
    /// certificate with its own key).
    pub(super) fn load(self, endpoint: &str) -> Result<OtlpTls, ConfigError> {
        let trusted = self.trusted.read(CERTIFICATES_FORM, read_certificates)?;
        let client_certificate = self
            .client_certificate
            .read(CERTIFICATES_FORM, read_certificates)?;
        let client_key = self.client_key.read(KEY_FORM, read_private_key)?;

        let https = url::Url::parse(endpoint).is_ok_and(|url| url.scheme() == "https");
        if !https
            && let Some(file) = [&trusted, &client_certificate, &client_key]
                .into_iter()
                .flatten()
                .next()
        {
            return Err(file.inconsistent(format!(
                "the endpoint {endpoint} is plaintext; TLS files need an https:// one"
            )));
        }
        let client_identity = match (client_certificate, client_key) {
            (Some(certificate), Some(key)) => {
                check_key_pair(&certificate.pem, &key.pem)
                    .map_err(|reason| key.inconsistent(reason))?;
                Some(ClientIdentity {
                    certificate_chain: certificate.pem,
                    private_key: key.pem,
                })
            }
            (None, None) => None,
            (Some(certificate), None) => {
                return Err(certificate.inconsistent(format!(
                    "a client certificate needs its key: set {CLIENT_KEY} too"
                )));
            }
            (None, Some(key)) => {
                return Err(key.inconsistent(format!(
                    "a client key needs its certificate: set {CLIENT_CERTIFICATE} too"
                )));
            }
        };
        Ok(OtlpTls {
            trusted_certificates: trusted.map(|file| file.pem),
            client_identity,
        })
    }
}

/// One kind of TLS file as the generic variable and the signal's name it.
struct SignalOrGeneric {
    generic: Option<NamedFile>,
    signal: Option<NamedFile>,
}

impl SignalOrGeneric {
    /// The signal's file if named, else the generic one; both are read and
    /// checked with `read`, so a wrong path stops the service even where the
    /// other variable wins.
    fn read(
        self,
        expected: &'static str,
        read: fn(&str) -> Option<Vec<u8>>,
    ) -> Result<Option<TlsFile>, ConfigError> {
        let generic = self
            .generic
            .map(|file| file.read(expected, read))
            .transpose()?;
        let signal = self
            .signal
            .map(|file| file.read(expected, read))
            .transpose()?;
        Ok(signal.or(generic))
    }
}

/// A TLS file as the operator named it, not yet read.
struct NamedFile {
    var: &'static str,
    /// The variable's value: a path, perhaps with surrounding spaces.
    value: String,
}

impl NamedFile {
    fn from_env(env: &Env<'_>, var: &'static str) -> Option<Self> {
        env.get(var).map(|value| Self { var, value })
    }

    /// The file read and checked with `read`, or an error naming the
    /// variable and the form it accepts.
    fn read(
        self,
        expected: &'static str,
        read: fn(&str) -> Option<Vec<u8>>,
    ) -> Result<TlsFile, ConfigError> {
        let path = self.value.trim();
        match read(path) {
            Some(pem) => Ok(TlsFile {
                var: self.var,
                path: path.to_owned(),
                pem,
            }),
            None => Err(ConfigError::Invalid {
                var: self.var,
                value: self.value,
                expected,
            }),
        }
    }
}

/// A TLS file read and checked, with the variable and path it came from, so
/// that a refusal can name them.
struct TlsFile {
    var: &'static str,
    path: String,
    pem: Vec<u8>,
}

impl TlsFile {
    fn inconsistent(&self, reason: String) -> ConfigError {
        ConfigError::Inconsistent {
            var: self.var,
            value: self.path.clone(),
            reason,
        }
    }
}

/// The file at `path` if it holds one or more PEM certificates and nothing
/// malformed.
fn read_certificates(path: &str) -> Option<Vec<u8>> {
    let pem = std::fs::read(path).ok()?;
    let mut count = 0;
    for certificate in CertificateDer::pem_slice_iter(&pem) {
        certificate.ok()?;
        count += 1;
    }
    (count > 0).then_some(pem)
}

/// Whether rustls can sign with `key` as the owner of the chain's first
/// certificate, as the TLS handshake will ask it to.
fn check_key_pair(certificate_chain: &[u8], key: &[u8]) -> Result<(), String> {
    let chain = CertificateDer::pem_slice_iter(certificate_chain)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| error.to_string())?;
    let key = PrivateKeyDer::from_pem_slice(key).map_err(|error| error.to_string())?;
    match CertifiedKey::from_der(chain, key, &aws_lc_rs::default_provider()) {
        Ok(_) => Ok(()),
        Err(rustls::Error::InconsistentKeys(_)) => {
            Err("the key does not belong to the client certificate".to_owned())
        }
        Err(error) => Err(format!("the key cannot sign: {error}")),
    }
}

/// The file at `path` if it holds a PEM private key (PKCS#8, PKCS#1 or SEC1).
fn read_private_key(path: &str) -> Option<Vec<u8>> {
    let pem = std::fs::read(path).ok()?;
    PrivateKeyDer::from_pem_slice(&pem).ok()?;
    Some(pem)
}

#[cfg(test)]
mod tests {
    use somework_testkit::tls::TestCertificates;

    use super::*;
    use crate::config::otel::tests::{logs_otlp, otlp, traces};

    fn path(file: std::path::PathBuf) -> String {
        file.into_os_string()
            .into_string()
            .expect("a UTF-8 temporary path")
    }

    #[test]
    fn tls_files_are_read_per_signal_over_the_generic_ones() {
        let files = TestCertificates::new();
        let (ca, server) = (path(files.ca_file()), path(files.server_cert_file()));
        let (client, key) = (
            path(files.client_cert_file()),
            path(files.client_key_file()),
        );
        let pairs = [
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "https://collector:4317"),
            ("OTEL_EXPORTER_OTLP_CERTIFICATE", &ca),
            ("OTEL_EXPORTER_OTLP_LOGS_CERTIFICATE", &server),
            ("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", &client),
            ("OTEL_EXPORTER_OTLP_CLIENT_KEY", &key),
        ];
        let read = |file: std::path::PathBuf| std::fs::read(file).expect("a test PEM file");
        let traces = otlp(&pairs).tls;
        assert_eq!(traces.trusted_certificates, Some(read(files.ca_file())));
        let client = traces.client_identity.expect("a client identity");
        assert_eq!(client.certificate_chain, read(files.client_cert_file()));
        assert_eq!(client.private_key, read(files.client_key_file()));
        assert!(!format!("{client:?}").contains("PRIVATE KEY"), "{client:?}");
        let logs = logs_otlp(&pairs).tls;
        assert_eq!(
            logs.trusted_certificates,
            Some(read(files.server_cert_file()))
        );
        assert!(logs.client_identity.is_some());
    }

    #[test]
    fn tls_files_that_are_missing_or_not_pem_are_refused_by_name() {
        let files = TestCertificates::new();
        let https = ("OTEL_EXPORTER_OTLP_ENDPOINT", "https://collector:4317");
        let key = &path(files.client_key_file());
        let certificate = &path(files.client_cert_file());
        for (var, value, form) in [
            (
                "OTEL_EXPORTER_OTLP_CERTIFICATE",
                "/nonexistent/ca.pem",
                CERTIFICATES_FORM,
            ),
            (
                "OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE",
                key,
                CERTIFICATES_FORM,
            ),
            (
                "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE",
                key,
                CERTIFICATES_FORM,
            ),
            (
                "OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY",
                certificate,
                KEY_FORM,
            ),
        ] {
            let error = traces(&[https, (var, value)]).unwrap_err();
            assert_eq!(
                error,
                ConfigError::Invalid {
                    var,
                    value: value.to_owned(),
                    expected: form,
                }
            );
        }
    }

    #[test]
    fn half_a_client_identity_is_refused_naming_what_is_missing() {
        let files = TestCertificates::new();
        let https = ("OTEL_EXPORTER_OTLP_ENDPOINT", "https://collector:4317");
        let certificate = &path(files.client_cert_file());
        let key = &path(files.client_key_file());
        for (var, value, missing) in [
            (
                "OTEL_EXPORTER_OTLP_TRACES_CLIENT_CERTIFICATE",
                certificate,
                "OTEL_EXPORTER_OTLP_CLIENT_KEY",
            ),
            (
                "OTEL_EXPORTER_OTLP_CLIENT_KEY",
                key,
                "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE",
            ),
        ] {
            match traces(&[https, (var, value)]).unwrap_err() {
                ConfigError::Inconsistent {
                    var: named,
                    value: shown,
                    reason,
                } => {
                    assert_eq!((named, shown.as_str()), (var, value.as_str()));
                    assert!(reason.contains(missing), "{reason}");
                }
                other => panic!("{var}: {other}"),
            }
        }
    }

    #[test]
    fn a_client_key_of_another_certificate_is_refused() {
        let files = TestCertificates::new();
        let server_key = &path(files.server_key_file());
        let error = traces(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "https://collector:4317"),
            (
                "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE",
                &path(files.client_cert_file()),
            ),
            ("OTEL_EXPORTER_OTLP_CLIENT_KEY", server_key),
        ])
        .unwrap_err();
        assert_eq!(
            error,
            ConfigError::Inconsistent {
                var: "OTEL_EXPORTER_OTLP_CLIENT_KEY",
                value: server_key.clone(),
                reason: "the key does not belong to the client certificate".to_owned(),
            }
        );
    }

    #[test]
    fn tls_files_for_a_plaintext_endpoint_are_refused() {
        let files = TestCertificates::new();
        let ca = &path(files.ca_file());
        let error = traces(&[
            (
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                "http://collector:4317",
            ),
            ("OTEL_EXPORTER_OTLP_CERTIFICATE", ca),
        ])
        .unwrap_err();
        let message = error.to_string();
        assert!(
            message.contains("OTEL_EXPORTER_OTLP_CERTIFICATE")
                && message.contains("http://collector:4317")
                && message.contains("https://"),
            "{message}"
        );
        // The same file for an https:// signal is fine.
        let logs = logs_otlp(&[
            ("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", "https://collector:4317"),
            ("OTEL_EXPORTER_OTLP_CERTIFICATE", ca),
        ]);
        assert!(logs.tls.trusted_certificates.is_some());
    }
}
