//! The TLS client configuration (rustls with the ring provider): system
//! roots or a CA file, optional client certificate for mutual TLS.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore};

use crate::BuildError;

/// TLS settings as given to the builder.
#[derive(Debug, Clone, Default)]
pub(crate) struct TlsSettings {
    pub(crate) ca_file: Option<PathBuf>,
    pub(crate) client_cert: Option<(PathBuf, PathBuf)>,
}

fn err(name: &'static str, reason: String) -> BuildError {
    BuildError::Tls { name, reason }
}

fn read_certs(name: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, BuildError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| err(name, format!("cannot read {}: {e}", path.display())))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| err(name, format!("{}: invalid PEM: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(err(
            name,
            format!("{} holds no PEM certificate", path.display()),
        ));
    }
    Ok(certs)
}

/// Builds the client configuration, reading every file now so that a bad
/// path or PEM fails `build()` with the setting named.
pub(crate) fn client_config(s: &TlsSettings) -> Result<Arc<ClientConfig>, BuildError> {
    let mut roots = RootCertStore::empty();
    match &s.ca_file {
        Some(path) => {
            for cert in read_certs("tls_ca_file", path)? {
                roots.add(cert).map_err(|e| {
                    err(
                        "tls_ca_file",
                        format!("{}: not a usable CA certificate: {e}", path.display()),
                    )
                })?;
            }
        }
        None => {
            let native = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(native.certs);
            if roots.is_empty() {
                return Err(err(
                    "tls_ca_file",
                    "no system root certificates found; give a CA file".into(),
                ));
            }
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| err("tls", e.to_string()))?
        .with_root_certificates(roots);
    let config = match &s.client_cert {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => {
            let chain = read_certs("tls_client_cert", cert)?;
            let key = PrivateKeyDer::from_pem_file(key).map_err(|e| {
                err(
                    "tls_client_cert",
                    format!("{}: no usable private key: {e}", key.display()),
                )
            })?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| err("tls_client_cert", e.to_string()))?
        }
    };
    Ok(Arc::new(config))
}
