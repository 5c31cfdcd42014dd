//! TLS for webhooks: the rustls client configuration (ring provider, TLS
//! 1.2/1.3, Mozilla roots from `webpki-roots` plus operator-supplied PEM
//! roots) and recognising TLS failures inside hyper's error chains.

use std::sync::Arc;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

/// Why a client could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientBuildError {
    /// `extra_roots_pem` does not parse as PEM.
    #[error("extra root certificates are not valid PEM: {source}")]
    Pem {
        /// The PEM error.
        source: rustls::pki_types::pem::Error,
    },
    /// `extra_roots_pem` holds no certificate.
    #[error("extra root certificates: no CERTIFICATE block found")]
    NoRootCertificate,
    /// A certificate in `extra_roots_pem` is not usable as a trust anchor.
    #[error("extra root certificate #{index} is not usable: {source}")]
    RootCertificate {
        /// Position in the PEM text, from 0.
        index: usize,
        /// rustls' reason.
        source: rustls::Error,
    },
    /// rustls refused the TLS configuration.
    #[error("TLS configuration refused: {source}")]
    Tls {
        /// rustls' reason.
        source: rustls::Error,
    },
}

pub(crate) fn tls_config(
    extra_roots_pem: Option<&str>,
) -> Result<rustls::ClientConfig, ClientBuildError> {
    let mut roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    if let Some(pem) = extra_roots_pem {
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pem.as_bytes())
            .collect::<Result<_, _>>()
            .map_err(|source| ClientBuildError::Pem { source })?;
        if certs.is_empty() {
            return Err(ClientBuildError::NoRootCertificate);
        }
        for (index, cert) in certs.into_iter().enumerate() {
            roots
                .add(cert)
                .map_err(|source| ClientBuildError::RootCertificate { index, source })?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|source| ClientBuildError::Tls { source })?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// True when a rustls error is somewhere in the chain. It may hide inside
/// nested `io::Error`s (hyper-rustls wraps tokio-rustls' `io::Error`), whose
/// `source()` skips the wrapped error itself, so look through `get_ref()` too.
pub(crate) fn is_tls_failure(e: &(dyn std::error::Error + 'static)) -> bool {
    // Bounded walk: error chains are short, and this never loops forever.
    let mut pending: Vec<&(dyn std::error::Error + 'static)> = vec![e];
    let mut seen = 0;
    while let Some(err) = pending.pop() {
        seen += 1;
        if seen > 32 {
            break;
        }
        if err.is::<rustls::Error>() {
            return true;
        }
        if let Some(io) = err.downcast_ref::<std::io::Error>()
            && let Some(inner) = io.get_ref()
        {
            pending.push(inner);
        }
        if let Some(source) = err.source() {
            pending.push(source);
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_extra_roots_are_build_errors() {
        assert!(matches!(
            tls_config(Some("no pem here")),
            Err(ClientBuildError::NoRootCertificate)
        ));
        let not_a_cert = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        assert!(matches!(
            tls_config(Some(not_a_cert)),
            Err(ClientBuildError::RootCertificate { index: 0, .. })
        ));
        assert!(tls_config(None).is_ok());
    }

    #[test]
    fn rustls_errors_are_found_inside_nested_io_errors() {
        let rustls_err = rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
        let inner = std::io::Error::new(std::io::ErrorKind::InvalidData, rustls_err);
        let outer = std::io::Error::other(inner);
        assert!(is_tls_failure(&outer));
        let plain = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        assert!(!is_tls_failure(&plain));
    }
}
