//! HTTPS: the certificate and key (PEM) read into a rustls configuration
//! (ring, as the GELF layer's TLS transport), optionally asking clients for
//! a certificate from given CAs; read again on SIGHUP ([`Tls::reload`]),
//! each new connection taking the configuration current when it arrives.
//! [`serve`] is the accept loop: TLS handshake, then HTTP/1.1 with the
//! node's router, and a graceful stop that lets open connections finish.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::ServerConfig;
use tower::ServiceExt as _;

/// How long a client has to finish the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A TLS setting that cannot be used; the message names the setting and file.
#[derive(Debug, thiserror::Error)]
#[error("{setting} {path}: {message}")]
pub struct TlsError {
    setting: &'static str,
    path: String,
    message: String,
}

fn err(setting: &'static str, path: &Path, message: impl std::fmt::Display) -> TlsError {
    TlsError {
        setting,
        path: path.display().to_string(),
        message: message.to_string(),
    }
}

/// The node's TLS configuration and where it is read from.
pub struct Tls {
    cert: PathBuf,
    key: PathBuf,
    client_ca: Option<PathBuf>,
    current: RwLock<Arc<ServerConfig>>,
}

impl Tls {
    /// Reads the certificate chain, the key and the client CAs.
    pub fn load(cert: &Path, key: &Path, client_ca: Option<&Path>) -> Result<Self, TlsError> {
        let config = server_config(cert, key, client_ca)?;
        Ok(Self {
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
            client_ca: client_ca.map(Path::to_path_buf),
            current: RwLock::new(Arc::new(config)),
        })
    }

    /// Reads the files again; on an error the configuration in use stays.
    pub fn reload(&self) -> Result<(), TlsError> {
        let config = server_config(&self.cert, &self.key, self.client_ca.as_deref())?;
        if let Ok(mut c) = self.current.write() {
            *c = Arc::new(config);
        }
        Ok(())
    }

    fn acceptor(&self) -> Option<tokio_rustls::TlsAcceptor> {
        self.current
            .read()
            .ok()
            .map(|c| tokio_rustls::TlsAcceptor::from(Arc::clone(&c)))
    }

    /// Whether clients must show a certificate.
    pub fn client_auth(&self) -> bool {
        self.client_ca.is_some()
    }
}

fn server_config(
    cert: &Path,
    key: &Path,
    client_ca: Option<&Path>,
) -> Result<ServerConfig, TlsError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| err("--tls-cert / TTS_TLS_CERT", cert, e))?
        .collect::<Result<_, _>>()
        .map_err(|e| err("--tls-cert / TTS_TLS_CERT", cert, e))?;
    if certs.is_empty() {
        return Err(err(
            "--tls-cert / TTS_TLS_CERT",
            cert,
            "no CERTIFICATE in the file",
        ));
    }
    let private =
        PrivateKeyDer::from_pem_file(key).map_err(|e| err("--tls-key / TTS_TLS_KEY", key, e))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| err("--tls-cert / TTS_TLS_CERT", cert, e))?;
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let setting = "--tls-client-ca / TTS_TLS_CLIENT_CA";
            let mut roots = rustls::RootCertStore::empty();
            for c in CertificateDer::pem_file_iter(ca).map_err(|e| err(setting, ca, e))? {
                roots
                    .add(c.map_err(|e| err(setting, ca, e))?)
                    .map_err(|e| err(setting, ca, e))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| err(setting, ca, e))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder.with_single_cert(certs, private).map_err(|e| {
        err(
            "--tls-key / TTS_TLS_KEY",
            key,
            format!("does not fit the certificate: {e}"),
        )
    })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// Serves `app` over HTTPS on `listener` until `shutdown` resolves, then
/// waits for the open connections to finish.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    tls: Arc<Tls>,
    shutdown: impl std::future::Future<Output = ()>,
) -> std::io::Result<()> {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (tcp, addr) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of descriptors and the like: wait, do not spin.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Some(acceptor) = tls.acceptor() else {
            continue;
        };
        let app = app.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let stream = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    tracing::debug!(client_addr = %addr, error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => return,
            };
            let service = hyper::service::service_fn(
                move |mut req: hyper::Request<hyper::body::Incoming>| {
                    req.extensions_mut().insert(ConnectInfo::<SocketAddr>(addr));
                    app.clone().oneshot(req)
                },
            );
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service);
            let _ = watcher.watch(conn).await;
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}
