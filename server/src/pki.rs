//! The stack's local PKI: mutual TLS between the stack's containers and the control plane's
//! container-facing listener (the seed's "mTLS ready").
//!
//! At provision (`bss-control up`, or `bss-control pki`) a CA and four leaf certificates are
//! made in `pki/` beside the compose file, where the compose file mounts them:
//!
//! | directory        | who                     | mounted at              | may call            |
//! |------------------|-------------------------|-------------------------|---------------------|
//! | `control-plane/` | the listener (server)   | —                       | —                   |
//! | `envoy/`         | Envoy's upstream cluster| `/etc/envoy/pki`        | the BSS API, health |
//! | `prometheus/`    | Prometheus' scrape      | `/etc/prometheus/pki`   | `/metrics`, health  |
//! | `probe/`         | verify, tests, operators| —                       | the BSS API, health |
//!
//! Each directory holds `ca.pem`, `cert.pem` and `key.pem`. The CA's private key is never
//! written: the set is made whole, at once, in a temporary directory renamed into place (two
//! processes racing both end with the winner's set), and made again whole when a file is
//! missing or the set nears its end of validity. Whoever holds a leaf's key can be that
//! leaf to the listener; the keys are files of the user who provisioned, readable by the
//! containers that mount them (Prometheus runs as `nobody`, so its key is world-readable:
//! it grants only `/metrics`).
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// The name the stack's containers use for the control plane, and the listener
/// certificate's only name: clients connect by it (Envoy's SNI, Prometheus' `server_name`).
pub const SERVER_NAME: &str = "host.docker.internal";

/// How long a set is valid, and how long before its end `ensure` makes a new one.
const VALID_DAYS: i64 = 397;
const RENEW_BEFORE_DAYS: i64 = 30;

/// The leaves, by directory name.
pub const CONTROL_PLANE: &str = "control-plane";
pub const ENVOY: &str = "envoy";
pub const PROMETHEUS: &str = "prometheus";
pub const PROBE: &str = "probe";
const CLIENTS: [&str; 3] = [ENVOY, PROMETHEUS, PROBE];

#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("making the certificates: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error("TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> PkiError + '_ {
    move |source| PkiError::Io { path: path.to_path_buf(), source }
}

/// What [`Pki::ensure`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ensured {
    Existing,
    /// A new set: containers that mounted the previous one must restart to read it.
    Made,
}

/// A peer of the container-facing listener, known by the certificate it presented.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peer {
    Envoy,
    Prometheus,
    Probe,
}

impl Peer {
    /// Whether this peer may make this request: Prometheus scrapes and checks health,
    /// nothing else.
    pub fn may(self, method: &axum::http::Method, path: &str) -> bool {
        match self {
            Peer::Envoy | Peer::Probe => true,
            Peer::Prometheus => method == axum::http::Method::GET && matches!(path, "/metrics" | "/healthz"),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Pki {
    dir: PathBuf,
}

impl Pki {
    /// The set beside the compose file (its directory's `pki/`), where the file mounts it.
    pub fn beside(compose_dir: &Path) -> Self {
        Self { dir: compose_dir.join("pki") }
    }

    /// The set for this configuration: beside the first compose file.
    pub fn for_config(config: &crate::config::Config) -> Self {
        let first = config.stack.compose.first().cloned().unwrap_or_else(|| PathBuf::from("dev/compose.yml"));
        Self::beside(first.parent().unwrap_or(Path::new(".")))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn file(&self, leaf: &str, name: &str) -> PathBuf {
        self.dir.join(leaf).join(name)
    }

    /// Makes the set when it is missing, incomplete or near its end; otherwise leaves it.
    pub fn ensure(&self) -> Result<Ensured, PkiError> {
        if self.complete() && !self.expiring() {
            return Ok(Ensured::Existing);
        }
        let parent = self.dir.parent().unwrap_or(Path::new("."));
        static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let unique = format!("{}-{}-{}", std::process::id(), crate::clock::now_ms(), SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
        let tmp = parent.join(format!(".pki-{unique}"));
        let made = (|| {
            make_set(&tmp)?;
            // Another process may have made a valid set meanwhile: it stands.
            if self.complete() && !self.expiring() {
                return Ok(Ensured::Existing);
            }
            if self.dir.exists() {
                // Incomplete or expiring: replaced whole. (A directory that docker made
                // for a bind mount before the set existed may not be ours to move: the
                // error names it.)
                let old = parent.join(format!(".pki-old-{unique}"));
                match std::fs::rename(&self.dir, &old) {
                    Ok(()) => {
                        let _ = std::fs::remove_dir_all(&old);
                    }
                    // Moved away by another process at the same time: theirs follows.
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(io(&self.dir)(e)),
                }
            }
            match std::fs::rename(&tmp, &self.dir) {
                Ok(()) => Ok(Ensured::Made),
                // Another process made it first: theirs stands.
                Err(_) if self.complete() => Ok(Ensured::Existing),
                Err(e) => Err(io(&self.dir)(e)),
            }
        })();
        let _ = std::fs::remove_dir_all(&tmp);
        made
    }

    fn complete(&self) -> bool {
        std::iter::once(CONTROL_PLANE).chain(CLIENTS).all(|leaf| ["ca.pem", "cert.pem", "key.pem"].iter().all(|f| self.file(leaf, f).is_file()))
            && self.dir.join("not-after").is_file()
    }

    fn expiring(&self) -> bool {
        let Ok(text) = std::fs::read_to_string(self.dir.join("not-after")) else { return true };
        let Ok(not_after) = text.trim().parse::<i64>() else { return true };
        not_after - time::OffsetDateTime::now_utc().unix_timestamp() < RENEW_BEFORE_DAYS * 86_400
    }

    fn certs(&self, leaf: &str, name: &str) -> Result<Vec<CertificateDer<'static>>, PkiError> {
        let path = self.file(leaf, name);
        let bytes = std::fs::read(&path).map_err(io(&path))?;
        let certs: Vec<_> = CertificateDer::pem_slice_iter(&bytes)
            .collect::<Result<_, _>>()
            .map_err(|e| PkiError::Invalid { path: path.clone(), message: e.to_string() })?;
        if certs.is_empty() {
            return Err(PkiError::Invalid { path, message: "no certificate".into() });
        }
        Ok(certs)
    }

    fn key(&self, leaf: &str) -> Result<PrivateKeyDer<'static>, PkiError> {
        let path = self.file(leaf, "key.pem");
        let bytes = std::fs::read(&path).map_err(io(&path))?;
        PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| PkiError::Invalid { path, message: e.to_string() })
    }

    fn roots(&self, leaf: &str) -> Result<Arc<rustls::RootCertStore>, PkiError> {
        let mut roots = rustls::RootCertStore::empty();
        for c in self.certs(leaf, "ca.pem")? {
            roots.add(c)?;
        }
        Ok(Arc::new(roots))
    }

    /// The listener's TLS: its certificate, and a client certificate from this CA required.
    pub fn server_config(&self) -> Result<Arc<rustls::ServerConfig>, PkiError> {
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(self.roots(CONTROL_PLANE)?, provider())
            .build()
            .map_err(|e| PkiError::Invalid { path: self.dir.clone(), message: e.to_string() })?;
        let mut config = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .with_client_cert_verifier(verifier)
            .with_single_cert(self.certs(CONTROL_PLANE, "cert.pem")?, self.key(CONTROL_PLANE)?)?;
        // HTTP/1.1 only: the listener (axum without its http2 feature) speaks nothing else,
        // and a client offered h2 (Prometheus prefers it) would send a preface it drops.
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }

    /// A client of the listener: trusts this CA, presents `leaf`'s certificate, or none.
    pub fn client_config(&self, leaf: Option<&str>) -> Result<rustls::ClientConfig, PkiError> {
        let builder = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .with_root_certificates(self.roots(leaf.unwrap_or(PROBE))?);
        Ok(match leaf {
            Some(leaf) => builder.with_client_auth_cert(self.certs(leaf, "cert.pem")?, self.key(leaf)?)?,
            None => builder.with_no_client_auth(),
        })
    }

    /// A client that trusts this CA and presents a certificate of its own making, signed
    /// by no CA of ours: what the listener must refuse.
    pub fn stranger_client_config(&self) -> Result<rustls::ClientConfig, PkiError> {
        let key = rcgen::KeyPair::generate()?;
        let mut p = rcgen::CertificateParams::new(vec![])?;
        p.distinguished_name.push(rcgen::DnType::CommonName, "bss-envoy");
        p.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        let cert = p.self_signed(&key)?;
        let key = PrivateKeyDer::try_from(key.serialize_der()).map_err(|e| PkiError::Invalid { path: self.dir.clone(), message: e.to_string() })?;
        Ok(rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .with_root_certificates(self.roots(PROBE)?)
            .with_client_auth_cert(vec![cert.der().clone()], key)?)
    }

    /// An HTTP client of the listener with this TLS configuration, reaching [`SERVER_NAME`]
    /// at `addr`. URLs are `https://host.docker.internal:PORT/...`.
    pub fn http_client_with(&self, tls: rustls::ClientConfig, addr: std::net::SocketAddr, timeout: std::time::Duration) -> Result<reqwest::Client, PkiError> {
        reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .resolve(SERVER_NAME, addr)
            .timeout(timeout)
            .build()
            .map_err(|e| PkiError::Invalid { path: self.dir.clone(), message: e.to_string() })
    }

    /// An HTTP client of the listener as `leaf` (or with no certificate), reaching
    /// [`SERVER_NAME`] at `addr`. URLs are `https://host.docker.internal:PORT/...`.
    pub fn http_client(&self, leaf: Option<&str>, addr: std::net::SocketAddr, timeout: std::time::Duration) -> Result<reqwest::Client, PkiError> {
        self.http_client_with(self.client_config(leaf)?, addr, timeout)
    }

    /// Which leaf a presented certificate is (the chain's first), if it is one of ours.
    pub fn identities(&self) -> Result<Vec<(Peer, CertificateDer<'static>)>, PkiError> {
        Ok(vec![
            (Peer::Envoy, self.certs(ENVOY, "cert.pem")?.remove(0)),
            (Peer::Prometheus, self.certs(PROMETHEUS, "cert.pem")?.remove(0)),
            (Peer::Probe, self.certs(PROBE, "cert.pem")?.remove(0)),
        ])
    }
}

/// The one crypto provider this product uses (ring: no C++ toolchain or cmake to build).
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Makes a whole set in `dir` (which must not exist).
fn make_set(dir: &Path) -> Result<(), PkiError> {
    use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose};
    let now = time::OffsetDateTime::now_utc();
    let not_after = now + time::Duration::days(VALID_DAYS);
    let dated = |mut p: CertificateParams| {
        p.not_before = now - time::Duration::minutes(5);
        p.not_after = not_after;
        p
    };
    let mut ca = dated(CertificateParams::default());
    ca.distinguished_name.push(DnType::CommonName, "bss-control local CA");
    ca.distinguished_name.push(DnType::OrganizationName, "bss-control stack");
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_key = KeyPair::generate()?;
    let ca_cert = ca.self_signed(&ca_key)?;

    std::fs::create_dir_all(dir).map_err(io(dir))?;
    set_mode(dir, 0o755)?;
    for leaf in std::iter::once(CONTROL_PLANE).chain(CLIENTS) {
        let server = leaf == CONTROL_PLANE;
        let mut p = dated(CertificateParams::new(if server { vec![SERVER_NAME.to_string()] } else { vec![] })?);
        p.distinguished_name.push(DnType::CommonName, if server { SERVER_NAME.to_string() } else { format!("bss-{leaf}") });
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        p.extended_key_usages = vec![if server { ExtendedKeyUsagePurpose::ServerAuth } else { ExtendedKeyUsagePurpose::ClientAuth }];
        p.use_authority_key_identifier_extension = true;
        let key = KeyPair::generate()?;
        let cert = p.signed_by(&key, &ca_cert, &ca_key)?;
        let d = dir.join(leaf);
        std::fs::create_dir_all(&d).map_err(io(&d))?;
        set_mode(&d, 0o755)?;
        write(&d.join("ca.pem"), ca_cert.pem().as_bytes(), 0o644)?;
        write(&d.join("cert.pem"), cert.pem().as_bytes(), 0o644)?;
        // Prometheus reads its key as `nobody`.
        write(&d.join("key.pem"), key.serialize_pem().as_bytes(), if leaf == PROMETHEUS { 0o644 } else { 0o600 })?;
    }
    write(&dir.join("not-after"), not_after.unix_timestamp().to_string().as_bytes(), 0o644)?;
    Ok(())
}

fn write(path: &Path, bytes: &[u8], mode: u32) -> Result<(), PkiError> {
    std::fs::write(path, bytes).map_err(io(path))?;
    set_mode(path, mode)
}

fn set_mode(path: &Path, mode: u32) -> Result<(), PkiError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(io(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_set_is_made_once_and_kept() {
        let d = tempfile::tempdir().unwrap();
        let pki = Pki::beside(d.path());
        assert_eq!(pki.ensure().unwrap(), Ensured::Made);
        let ca = std::fs::read(pki.file(ENVOY, "ca.pem")).unwrap();
        assert_eq!(pki.ensure().unwrap(), Ensured::Existing);
        assert_eq!(std::fs::read(pki.file(ENVOY, "ca.pem")).unwrap(), ca);
        // Every leaf shares the one CA; the CA's key is nowhere.
        for leaf in [CONTROL_PLANE, PROMETHEUS, PROBE] {
            assert_eq!(std::fs::read(pki.file(leaf, "ca.pem")).unwrap(), ca);
        }
        let files: Vec<_> = walk(pki.dir());
        assert_eq!(files.len(), 13, "{files:?}");
        // A missing file: the set is made again, whole (a new CA).
        std::fs::remove_file(pki.file(PROBE, "key.pem")).unwrap();
        assert_eq!(pki.ensure().unwrap(), Ensured::Made);
        assert_ne!(std::fs::read(pki.file(ENVOY, "ca.pem")).unwrap(), ca);
        assert!(pki.server_config().is_ok());
        assert_eq!(pki.identities().unwrap().len(), 3);
    }

    #[test]
    fn racing_processes_end_with_one_whole_set() {
        let d = tempfile::tempdir().unwrap();
        let pki = Pki::beside(d.path());
        let runs: Vec<_> = (0..4).map(|_| std::thread::spawn({
            let pki = pki.clone();
            move || pki.ensure()
        })).collect();
        for r in runs {
            r.join().unwrap().expect("each ensure succeeds");
        }
        let ca = std::fs::read(pki.file(CONTROL_PLANE, "ca.pem")).unwrap();
        for leaf in CLIENTS {
            assert_eq!(std::fs::read(pki.file(leaf, "ca.pem")).unwrap(), ca, "{leaf} is of the same set");
        }
        assert!(pki.server_config().is_ok() && pki.client_config(Some(ENVOY)).is_ok());
        // No temporary directory left behind.
        let left: Vec<_> = std::fs::read_dir(d.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(left, vec![std::ffi::OsString::from("pki")]);
    }

    #[test]
    fn an_expiring_set_is_renewed() {
        let d = tempfile::tempdir().unwrap();
        let pki = Pki::beside(d.path());
        pki.ensure().unwrap();
        let soon = time::OffsetDateTime::now_utc().unix_timestamp() + 86_400;
        std::fs::write(pki.dir().join("not-after"), soon.to_string()).unwrap();
        assert_eq!(pki.ensure().unwrap(), Ensured::Made);
        assert_eq!(pki.ensure().unwrap(), Ensured::Existing);
    }

    #[test]
    fn prometheus_may_only_scrape() {
        use axum::http::Method;
        assert!(Peer::Prometheus.may(&Method::GET, "/metrics"));
        assert!(Peer::Prometheus.may(&Method::GET, "/healthz"));
        assert!(!Peer::Prometheus.may(&Method::GET, "/api/customers"));
        assert!(!Peer::Prometheus.may(&Method::POST, "/metrics"));
        assert!(Peer::Envoy.may(&Method::POST, "/api/customers"));
    }

    fn walk(dir: &Path) -> Vec<PathBuf> {
        let mut out = vec![];
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
        out
    }
}
