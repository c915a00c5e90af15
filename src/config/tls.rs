//! TLS material for `protocol: HTTPS` listeners: PEM certificate chains and private keys loaded
//! at config load (and again on every reload), assembled into one rustls server config per port
//! with SNI selection when several listeners share the port.
//!
//! Not here: the handshake itself (`runtime::worker` hands accepted sockets to `http::tls_conn`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use crate::schema as model;

fn resolve(p: &str, base: Option<&Path>) -> PathBuf {
    let path = Path::new(p);
    match base {
        Some(b) if path.is_relative() => b.join(path),
        _ => path.to_path_buf(),
    }
}

/// Every certificate of a PEM file (at least one).
fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let v: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("invalid certificate PEM in {}: {e}", path.display()))?;
    if v.is_empty() {
        return Err(format!("no certificate found in {}", path.display()));
    }
    Ok(v)
}

/// The files a listener's `tls` names, resolved like [`load_certified_key`] resolves them.
pub(super) fn files(t: &model::ListenerTls, base: Option<&Path>) -> Vec<PathBuf> {
    [t.cert.as_deref(), t.key.as_deref()]
        .into_iter()
        .flatten()
        .map(|p| resolve(p, base))
        .collect()
}

/// Reads `tls.cert` (PEM chain) and `tls.key` (PEM PKCS#8, PKCS#1 or SEC1).
pub(super) fn load_certified_key(
    t: &model::ListenerTls,
    base: Option<&Path>,
) -> Result<Arc<CertifiedKey>, String> {
    let cert = t.cert.as_deref().ok_or("tls.cert is required")?;
    let key = t.key.as_deref().ok_or("tls.key is required")?;
    let cert_path = resolve(cert, base);
    let key_path = resolve(key, base);
    let chain = read_certs(&cert_path)?;
    let key = PrivateKeyDer::from_pem_file(&key_path)
        .map_err(|e| format!("cannot read private key {}: {e}", key_path.display()))?;
    let provider = rustls::crypto::ring::default_provider();
    let ck = CertifiedKey::from_der(chain, key, &provider).map_err(|e| {
        format!(
            "certificate {} does not fit key {}: {e}",
            cert_path.display(),
            key_path.display()
        )
    })?;
    Ok(Arc::new(ck))
}

/// One server config for a port. With several listeners the certificate is chosen by SNI
/// (exact or `*.` wildcard hostname); a listener without hostname is the default.
pub(super) fn server_config(
    certs: Vec<(Option<String>, Arc<CertifiedKey>)>,
) -> Arc<rustls::ServerConfig> {
    let resolver = SniResolver {
        named: certs
            .iter()
            .filter_map(|(h, k)| {
                h.as_ref()
                    .filter(|h| !h.is_empty())
                    .map(|h| (h.clone(), k.clone()))
            })
            .collect(),
        default: certs
            .iter()
            .find(|(h, _)| h.as_deref().is_none_or(str::is_empty))
            .map(|(_, k)| k.clone())
            .or_else(|| (certs.len() == 1).then(|| certs[0].1.clone())),
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("ring supports the default TLS versions")
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(resolver));
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(cfg)
}

#[derive(Debug)]
struct SniResolver {
    named: Vec<(String, Arc<CertifiedKey>)>,
    default: Option<Arc<CertifiedKey>>,
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        if let Some(sni) = hello.server_name() {
            let exact = self.named.iter().find(|(h, _)| h.eq_ignore_ascii_case(sni));
            let wild = || {
                self.named
                    .iter()
                    .filter(|(h, _)| crate::routing::hostname_matches(h, sni))
                    .max_by_key(|(h, _)| h.len())
            };
            if let Some((_, k)) = exact.or_else(wild) {
                return Some(k.clone());
            }
        }
        self.default.clone()
    }
}

/// `backendTLS` with its files read (relative to the config file) and its verifier built. The
/// files are returned too, to be watched like listener certificates.
pub(super) fn backend_tls(
    t: &model::BackendTls,
    base: Option<&Path>,
) -> Result<(crate::net::client::tls::UpstreamTls, Vec<PathBuf>), String> {
    use crate::net::client::tls::{TlsSpec, UpstreamTls};
    let model::BackendTls {
        cert,
        key,
        root,
        hostname,
        insecure,
        insecure_host,
        alpn: _,
        subject_alt_names,
        key_exchange_groups: _,
        spiffe: _,
    } = t;
    let mut files = Vec::new();
    let mut certs = |p: &str| -> Result<Vec<CertificateDer<'static>>, String> {
        let path = resolve(p, base);
        files.push(path.clone());
        read_certs(&path)
    };
    let roots = root.as_deref().map(&mut certs).transpose()?;
    let client = match (cert, key) {
        (Some(c), Some(k)) => {
            let chain = certs(c)?;
            let key_path = resolve(k, base);
            let key = PrivateKeyDer::from_pem_file(&key_path)
                .map_err(|e| format!("cannot read private key {}: {e}", key_path.display()))?;
            files.push(key_path);
            Some((chain, key))
        }
        _ => None,
    };
    let spec = TlsSpec {
        roots,
        client,
        hostname: hostname.clone(),
        alt_names: subject_alt_names.clone().unwrap_or_default(),
        insecure: *insecure,
        insecure_host: *insecure_host,
    };
    Ok((UpstreamTls::new(spec)?, files))
}
