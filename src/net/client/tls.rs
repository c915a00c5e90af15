//! TLS toward upstreams: the default (Mozilla roots, name from the authority) and a route's
//! `backendTLS` (its own roots, a client certificate, the name to check and send as SNI, and
//! agentgateway's `insecure` / `insecureHost` escapes), built once at load.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, Error, SignatureScheme};

/// What `backendTLS` asks for, with its files already read.
pub(crate) struct TlsSpec {
    /// Trust these roots instead of the Mozilla set.
    pub roots: Option<Vec<CertificateDer<'static>>>,
    /// Present this chain and key (mTLS).
    pub client: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
    /// The name to check the certificate against and send as SNI (default: the target's host).
    pub hostname: Option<String>,
    /// More names the certificate may carry instead (`subjectAltNames`).
    pub alt_names: Vec<String>,
    /// Accept any certificate (agentgateway `insecure`).
    pub insecure: bool,
    /// Check the chain, not the name (agentgateway `insecureHost`).
    pub insecure_host: bool,
}

/// A TLS client configuration for upstream connections. Connections are pooled per address,
/// name and [`UpstreamTls::id`], so two configurations never share a connection.
#[derive(Debug)]
pub struct UpstreamTls {
    pub(crate) id: u64,
    pub(crate) config: Arc<rustls::ClientConfig>,
    /// `backendTLS.hostname`: checked and sent instead of the target's host.
    pub(crate) hostname: Option<String>,
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// Set to `1`: trust the system's certificate store too (upstreams and the control plane's
/// fetches), as `rustls-native-certs` finds it (`SSL_CERT_FILE` / `SSL_CERT_DIR` honoured).
pub(crate) const SYSTEM_ROOTS_ENV: &str = "PORTCULLIS_SYSTEM_ROOTS";

/// The system's trusted certificates when [`SYSTEM_ROOTS_ENV`] asks for them (read once).
pub(crate) fn system_roots() -> &'static [CertificateDer<'static>] {
    static ROOTS: OnceLock<Vec<CertificateDer<'static>>> = OnceLock::new();
    ROOTS.get_or_init(|| {
        if std::env::var(SYSTEM_ROOTS_ENV).as_deref() != Ok("1") {
            return Vec::new();
        }
        let found = rustls_native_certs::load_native_certs();
        for e in &found.errors {
            tracing::warn!(error = %e, "reading the system's trusted certificates");
        }
        tracing::info!(
            certificates = found.certs.len(),
            "trusting the system's certificates ({SYSTEM_ROOTS_ENV}=1)"
        );
        found.certs
    })
}

/// Mozilla's roots, and the system's when asked for.
fn default_store() -> rustls::RootCertStore {
    let mut roots =
        rustls::RootCertStore::from_iter(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    let (_added, _ignored) = roots.add_parsable_certificates(system_roots().iter().cloned());
    roots
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

impl UpstreamTls {
    /// Mozilla's roots (and the system's with [`SYSTEM_ROOTS_ENV`]), no client certificate:
    /// TLS to `https://` targets without `backendTLS`.
    pub(crate) fn default_roots() -> &'static UpstreamTls {
        static DEFAULT: OnceLock<UpstreamTls> = OnceLock::new();
        DEFAULT.get_or_init(|| {
            let roots = default_store();
            let config = rustls::ClientConfig::builder_with_provider(provider())
                .with_safe_default_protocol_versions()
                .expect("ring supports the default TLS versions")
                .with_root_certificates(roots)
                .with_no_client_auth();
            UpstreamTls {
                id: 0,
                config: Arc::new(config),
                hostname: None,
            }
        })
    }

    pub(crate) fn new(spec: TlsSpec) -> Result<UpstreamTls, String> {
        let mut roots = rustls::RootCertStore::empty();
        match spec.roots {
            Some(certs) => {
                for c in certs {
                    roots
                        .add(c)
                        .map_err(|e| format!("root certificate not usable: {e}"))?;
                }
            }
            None => roots = default_store(),
        }
        let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider())
            .build()
            .map_err(|e| format!("cannot build the certificate verifier: {e}"))?;
        let alt_names = spec
            .alt_names
            .iter()
            .map(|n| {
                ServerName::try_from(n.clone())
                    .map_err(|e| format!("subjectAltNames: {n:?} is not a DNS name or IP: {e}"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let verifier = Arc::new(Verifier {
            inner: webpki,
            insecure: spec.insecure,
            insecure_host: spec.insecure_host,
            alt_names,
            provider: provider(),
        });
        let builder = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .dangerous()
            .with_custom_certificate_verifier(verifier);
        let config = match spec.client {
            Some((chain, key)) => builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| format!("client certificate and key do not fit: {e}"))?,
            None => builder.with_no_client_auth(),
        };
        if let Some(h) = &spec.hostname {
            ServerName::try_from(h.clone())
                .map_err(|e| format!("hostname {h:?} is not a DNS name or IP: {e}"))?;
        }
        Ok(UpstreamTls {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            config: Arc::new(config),
            hostname: spec.hostname,
        })
    }
}

/// The Web PKI check with `backendTLS`'s relaxations: more accepted names, no name check
/// (`insecureHost`), or no certificate check at all (`insecure`). Handshake signatures are
/// always verified.
#[derive(Debug)]
struct Verifier {
    inner: Arc<WebPkiServerVerifier>,
    insecure: bool,
    insecure_host: bool,
    alt_names: Vec<ServerName<'static>>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        // agentgateway's precedence: `insecureHost` keeps the chain check even with `insecure`.
        if self.insecure && !self.insecure_host {
            return Ok(ServerCertVerified::assertion());
        }
        if !self.alt_names.is_empty() && !self.insecure_host {
            // Pinned names: the certificate must carry one of them (the hostname alone does
            // not do), as agentgateway's verifier does.
            let mut last = Err(Error::InvalidCertificate(CertificateError::NotValidForName));
            for n in &self.alt_names {
                last = self
                    .inner
                    .verify_server_cert(end_entity, intermediates, n, ocsp, now);
                if last.is_ok() {
                    break;
                }
            }
            return last;
        }
        let first =
            self.inner
                .verify_server_cert(end_entity, intermediates, server_name, ocsp, now);
        match first {
            Err(Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) if self.insecure_host => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
