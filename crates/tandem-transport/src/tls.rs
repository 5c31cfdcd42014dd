//! SIP over TLS (RFC 3261 §26.2.1, RFC 5630 §3.1.1): rustls configurations
//! for the listener (the operator's certificate chain and key) and for
//! connections Tandem opens (Mozilla's roots from `webpki-roots` plus the
//! operator's own, every peer verified by the name it was reached by, or by
//! its IP address when no name was given).
//!
//! The TLS stream itself is served by the TCP transport's connection loop
//! (`tcp.rs`): framing, limits and timeouts are the same, and the handshake
//! of an accepted connection must finish within `tcp_header_timeout`.

use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// Why a TLS configuration could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A PEM text does not parse.
    #[error("{what} is not valid PEM: {source}")]
    Pem {
        /// Which input (`certificate`, `private key`, `CA`).
        what: &'static str,
        /// The PEM error.
        source: rustls::pki_types::pem::Error,
    },
    /// The certificate PEM holds no CERTIFICATE block.
    #[error("{what}: no CERTIFICATE block found")]
    NoCertificate {
        /// Which input.
        what: &'static str,
    },
    /// A CA certificate is not usable as a trust anchor.
    #[error("CA certificate #{index} is not usable: {source}")]
    Anchor {
        /// Position in the PEM text, from 0.
        index: usize,
        /// rustls' reason.
        source: rustls::Error,
    },
    /// rustls refused the configuration (a key that does not match the
    /// certificate, an unsupported key type).
    #[error("TLS configuration refused: {source}")]
    Rustls {
        /// rustls' reason.
        source: rustls::Error,
    },
}

fn certificates(pem: &[u8], what: &'static str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<_, _>>()
        .map_err(|source| TlsError::Pem { what, source })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate { what });
    }
    Ok(certs)
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The listener's configuration: `chain_pem` is the certificate chain, leaf
/// first; `key_pem` its private key (PKCS#8, PKCS#1 or SEC1). No client
/// certificates are asked for (peers authenticate by digest).
pub fn server_config(
    chain_pem: &[u8],
    key_pem: &[u8],
) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let chain = certificates(chain_pem, "certificate")?;
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|source| TlsError::Pem {
        what: "private key",
        source,
    })?;
    let config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|source| TlsError::Rustls { source })?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|source| TlsError::Rustls { source })?;
    Ok(Arc::new(config))
}

/// The configuration for connections Tandem opens: Mozilla's roots plus
/// `extra_roots_pem` (a private CA, or a peer's self-signed certificate).
pub fn client_config(
    extra_roots_pem: Option<&[u8]>,
) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let mut roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    if let Some(pem) = extra_roots_pem {
        for (index, cert) in certificates(pem, "CA")?.into_iter().enumerate() {
            roots
                .add(cert)
                .map_err(|source| TlsError::Anchor { index, source })?;
        }
    }
    let config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|source| TlsError::Rustls { source })?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    const CERT: &[u8] = include_bytes!("../../../fixtures/tls/tandem.crt");
    const KEY: &[u8] = include_bytes!("../../../fixtures/tls/tandem.key");
    const CA: &[u8] = include_bytes!("../../../fixtures/tls/ca.crt");

    #[test]
    fn the_fixture_certificate_and_key_make_a_listener() {
        assert!(server_config(CERT, KEY).is_ok());
        assert!(client_config(Some(CA)).is_ok());
        assert!(client_config(None).is_ok());
    }

    #[test]
    fn bad_inputs_are_named_errors() {
        assert!(matches!(
            server_config(b"no pem", KEY),
            Err(TlsError::NoCertificate {
                what: "certificate"
            })
        ));
        assert!(matches!(
            server_config(CERT, b"no key here"),
            Err(TlsError::Pem {
                what: "private key",
                ..
            })
        ));
        // The CA's certificate with the leaf's key: rustls refuses the pair.
        let other = include_bytes!("../../../fixtures/tls/ca.key");
        assert!(matches!(
            server_config(CERT, other),
            Err(TlsError::Rustls { .. })
        ));
        let garbage = b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        assert!(matches!(
            client_config(Some(garbage)),
            Err(TlsError::Anchor { index: 0, .. })
        ));
    }
}
