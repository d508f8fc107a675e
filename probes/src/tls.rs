//! TLS connections that always let us read the certificate chain.
//!
//! rustls normally aborts the handshake when the chain does not verify, which leaves a prober
//! blind exactly when it matters (expired, self-signed, wrong host). So the handshake runs with a
//! verifier that checks only the handshake signatures, and the chain is verified afterwards with
//! webpki against our own trust anchors. That yields the verdict *and* the verified path, whose
//! earliest notAfter is the certificate expiry that actually matters. Nothing is sent over a
//! connection whose chain failed verification unless the probe asked to skip verification.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{ring, WebPkiSupportedAlgorithms};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, TrustAnchor, UnixTime};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;
use webpki::{EndEntityCert, KeyUsage};

use crate::net::{self, Failure, IpFamily};
use crate::outcome::{
    CertInfo, ConnFacts, Facts, KindFacts, Outcome, Phases, Reason, TlsFacts, VerifyResult,
};
use crate::timing::{charge_timeout, timeout_evidence, Phase};
use crate::{Clock, Error};

/// TLS settings of a probe, already loaded from disk.
#[derive(Debug, Clone, Default)]
pub struct TlsOptions {
    /// Trust only these roots instead of the system's.
    pub ca: Option<Vec<CertificateDer<'static>>>,
    /// Client certificate chain and key for mutual TLS.
    pub client_auth: Option<(Vec<CertificateDer<'static>>, Arc<PrivateKeyDer<'static>>)>,
    /// Let runs resume TLS sessions of earlier runs (off by default: a resumed handshake carries
    /// no certificate and understates the TLS phase; facts say when a session was resumed).
    pub resume_sessions: bool,
}

/// Read every certificate of a PEM file.
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, Error> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
        .map_err(|e| Error::Pem(path.display().to_string(), e.to_string()))?;
    if certs.is_empty() {
        return Err(Error::Pem(
            path.display().to_string(),
            "no certificates found".into(),
        ));
    }
    Ok(certs)
}

/// Read the first private key of a PEM file.
pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, Error> {
    PrivateKeyDer::from_pem_file(path)
        .map_err(|e| Error::Pem(path.display().to_string(), e.to_string()))
}

/// TLS protocol versions, ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
pub enum TlsVersion {
    #[serde(rename = "1.2")]
    V1_2,
    #[serde(rename = "1.3")]
    V1_3,
}

impl TlsVersion {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "1.2" => Some(TlsVersion::V1_2),
            "1.3" => Some(TlsVersion::V1_3),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            TlsVersion::V1_2 => "1.2",
            TlsVersion::V1_3 => "1.3",
        }
    }
}

/// Trust anchors plus the notAfter of the certificates they came from (a `TrustAnchor` keeps no
/// validity, but the verified chain's expiry includes the anchor's).
struct Anchors {
    anchors: Vec<TrustAnchor<'static>>,
    not_after: HashMap<(Vec<u8>, Vec<u8>), i64>,
}

impl Anchors {
    fn from_certs(certs: &[CertificateDer<'static>]) -> Self {
        let mut anchors = Vec::with_capacity(certs.len());
        let mut not_after = HashMap::with_capacity(certs.len());
        for der in certs {
            let Ok(anchor) = webpki::anchor_from_trusted_cert(der) else {
                continue;
            };
            let anchor = anchor.to_owned();
            if let Ok((_, cert)) = x509_parser::parse_x509_certificate(der) {
                not_after.insert(
                    (
                        anchor.subject.to_vec(),
                        anchor.subject_public_key_info.to_vec(),
                    ),
                    cert.validity().not_after.timestamp(),
                );
            }
            anchors.push(anchor);
        }
        Self { anchors, not_after }
    }

    /// The system's roots, loaded once per process: every probe without its own `ca` shares them.
    fn system() -> Arc<Anchors> {
        static SYSTEM: OnceLock<Arc<Anchors>> = OnceLock::new();
        SYSTEM
            .get_or_init(|| {
                let loaded = rustls_native_certs::load_native_certs();
                Arc::new(Anchors::from_certs(&loaded.certs))
            })
            .clone()
    }
}

/// Load the system roots now rather than in the first run that needs them (a daemon or a check
/// about to start many runs calls this once, off the runtime: it reads files).
pub fn preload_system_roots() {
    let _ = Anchors::system();
}

/// Checks handshake signatures only; the chain is judged after the handshake (see module docs).
#[derive(Debug)]
struct SignatureOnly {
    algs: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for SignatureOnly {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algs)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algs)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algs.supported_schemes()
    }
}

/// A reusable TLS client: build once per probe, connect per run.
#[derive(Clone)]
pub struct TlsClient {
    connector: TlsConnector,
    /// `None`: the system roots, loaded on first use (an http:// probe never needs them, and
    /// reading them costs milliseconds at start-up).
    anchors: Option<Arc<Anchors>>,
    algs: WebPkiSupportedAlgorithms,
}

impl std::fmt::Debug for TlsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsClient")
            .field("custom_ca", &self.anchors.is_some())
            .finish()
    }
}

impl TlsClient {
    /// `alpn` is offered as is (`[b"http/1.1"]` for HTTP probes, empty for TLS probes).
    pub fn new(options: &TlsOptions, alpn: &[&[u8]]) -> Result<Self, Error> {
        let provider = Arc::new(ring::default_provider());
        let algs = provider.signature_verification_algorithms;
        let builder = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| Error::Tls(e.to_string()))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(SignatureOnly { algs }));
        let mut config = match &options.client_auth {
            Some((chain, key)) => builder
                .with_client_auth_cert(chain.clone(), key.clone_key())
                .map_err(|e| Error::Tls(format!("client certificate: {e}")))?,
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        // rustls keeps a session cache per config, and a probe's config lives across runs: left
        // on, most runs would resume and see no certificate at all.
        if !options.resume_sessions {
            config.resumption = rustls::client::Resumption::disabled();
        }
        let anchors = match &options.ca {
            Some(certs) => {
                let anchors = Anchors::from_certs(certs);
                if anchors.anchors.is_empty() {
                    return Err(Error::Tls("no usable CA certificate".into()));
                }
                Some(Arc::new(anchors))
            }
            None => None,
        };
        Ok(Self {
            connector: TlsConnector::from(Arc::new(config)),
            anchors,
            algs,
        })
    }

    /// The same client offering `alpn` instead (its trust, client certificate and session
    /// policy stay).
    pub fn with_alpn(&self, alpn: &[&[u8]]) -> Self {
        let mut config = ClientConfig::clone(self.connector.config());
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Self {
            connector: TlsConnector::from(Arc::new(config)),
            anchors: self.anchors.clone(),
            algs: self.algs,
        }
    }

    /// Handshake over `stream` and judge the presented chain against `server_name`.
    pub(crate) async fn handshake<S>(
        &self,
        stream: S,
        server_name: &str,
        clock: &Clock,
        spent: &mut Duration,
    ) -> Result<(TlsStream<S>, TlsFacts), Failure>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let name = parse_server_name(server_name)?;
        let start = Instant::now();
        let result = self.connector.connect(name.clone(), stream).await;
        if result.is_err() {
            *spent += start.elapsed();
        }
        let stream = result.map_err(|e| {
            let detail = match e.kind() {
                std::io::ErrorKind::UnexpectedEof => {
                    "connection closed during the handshake".into()
                }
                _ => e.to_string(),
            };
            Failure::new(Reason::TlsHandshake, format!("TLS handshake: {detail}"))
        })?;
        let facts = {
            let (_, conn) = stream.get_ref();
            let chain = conn.peer_certificates().unwrap_or_default();
            let version = match conn.protocol_version() {
                Some(rustls::ProtocolVersion::TLSv1_3) => "1.3".to_string(),
                Some(rustls::ProtocolVersion::TLSv1_2) => "1.2".to_string(),
                Some(other) => format!("{other:?}"),
                None => "unknown".to_string(),
            };
            let resumed = conn.handshake_kind() == Some(rustls::HandshakeKind::Resumed);
            let cipher = conn
                .negotiated_cipher_suite()
                .and_then(|s| s.suite().as_str())
                .unwrap_or("unknown")
                .to_string();
            // Judging the chain is part of the handshake a client waits for (Go's crypto/tls
            // verifies inside it too), so its time, and the one-time load of the system roots
            // on a process's first verification, is the tls phase's: phases add up.
            let judged = self.judge(chain, &name, version, cipher, clock.unix_secs());
            *spent += start.elapsed();
            let mut facts = judged?;
            facts.resumed = resumed;
            facts
        };
        Ok((stream, facts))
    }

    fn judge(
        &self,
        chain: &[CertificateDer<'_>],
        name: &ServerName<'_>,
        version: String,
        cipher: String,
        now: i64,
    ) -> Result<TlsFacts, Failure> {
        let Some(leaf_der) = chain.first() else {
            return Err(Failure::new(
                Reason::TlsHandshake,
                "server presented no certificate",
            ));
        };
        let infos: Vec<CertInfo> = chain.iter().filter_map(cert_info).collect();
        let Some(leaf) = infos.first().filter(|_| infos.len() == chain.len()) else {
            return Err(Failure::new(
                Reason::TlsVerify,
                "server presented a certificate that does not parse as X.509",
            ));
        };
        let leaf_not_after = leaf.not_after;
        let earliest_not_after = infos
            .iter()
            .map(|c| c.not_after)
            .min()
            .unwrap_or(leaf_not_after);

        let (verify_result, verify_detail, verified_chain_not_after) =
            match self.verify_chain(leaf_der, &chain[1..], name, now) {
                Ok(not_after) => (VerifyResult::Ok, None, Some(not_after)),
                Err((result, detail)) => (result, Some(detail), None),
            };
        Ok(TlsFacts {
            version,
            cipher,
            verify_result,
            verify_detail,
            leaf_not_after,
            earliest_not_after,
            verified_chain_not_after,
            effective_not_after: verified_chain_not_after.unwrap_or(leaf_not_after),
            chain: infos,
            resumed: false,
        })
    }

    /// Verify the chain and the name; on success return the earliest notAfter along the path.
    fn verify_chain(
        &self,
        leaf: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        name: &ServerName<'_>,
        now: i64,
    ) -> Result<i64, (VerifyResult, String)> {
        let ee = EndEntityCert::try_from(leaf)
            .map_err(|e| (VerifyResult::Other, format!("leaf certificate: {e}")))?;
        let anchors = self.anchors.clone().unwrap_or_else(Anchors::system);
        let path = ee
            .verify_for_usage(
                self.algs.all,
                &anchors.anchors,
                intermediates,
                UnixTime::since_unix_epoch(Duration::from_secs(u64::try_from(now).unwrap_or(0))),
                KeyUsage::server_auth(),
                None,
                None,
            )
            .map_err(|e| (classify(&e), e.to_string()))?;
        ee.verify_is_valid_for_subject_name(name)
            .map_err(|e| (classify(&e), e.to_string()))?;

        let mut earliest = not_after(leaf).unwrap_or(i64::MAX);
        for cert in path.intermediate_certificates() {
            if let Some(t) = not_after(&cert.der()) {
                earliest = earliest.min(t);
            }
        }
        let anchor = path.anchor();
        let key = (
            anchor.subject.to_vec(),
            anchor.subject_public_key_info.to_vec(),
        );
        if let Some(t) = anchors.not_after.get(&key) {
            earliest = earliest.min(*t);
        }
        Ok(earliest)
    }
}

fn classify(e: &webpki::Error) -> VerifyResult {
    match e {
        webpki::Error::CertExpired { .. } => VerifyResult::Expired,
        webpki::Error::CertNotValidYet { .. } => VerifyResult::NotYetValid,
        webpki::Error::UnknownIssuer => VerifyResult::UnknownIssuer,
        webpki::Error::CertNotValidForName(_) => VerifyResult::HostnameMismatch,
        _ => VerifyResult::Other,
    }
}

fn parse_server_name(name: &str) -> Result<ServerName<'static>, Failure> {
    let bare = name.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(bare.to_string()).map_err(|_| {
        Failure::new(
            Reason::TlsHandshake,
            format!("invalid TLS server name {name:?}"),
        )
    })
}

fn not_after(der: &CertificateDer<'_>) -> Option<i64> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    Some(cert.validity().not_after.timestamp())
}

fn cert_info(der: &CertificateDer<'_>) -> Option<CertInfo> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let mut sans = Vec::new();
    if let Ok(Some(ext)) = cert.subject_alternative_name() {
        for name in &ext.value.general_names {
            match name {
                x509_parser::extensions::GeneralName::DNSName(d) => sans.push((*d).to_string()),
                x509_parser::extensions::GeneralName::IPAddress(b) => {
                    let ip = match b.len() {
                        4 => <[u8; 4]>::try_from(*b)
                            .ok()
                            .map(|a| std::net::IpAddr::from(a).to_string()),
                        16 => <[u8; 16]>::try_from(*b)
                            .ok()
                            .map(|a| std::net::IpAddr::from(a).to_string()),
                        _ => None,
                    };
                    sans.extend(ip);
                }
                _ => {}
            }
        }
    }
    Some(CertInfo {
        subject: cert.subject().to_string(),
        issuer: cert.issuer().to_string(),
        sans,
        serial: serial_text(cert.raw_serial()),
        fingerprint_sha256: hex(&Sha256::digest(der.as_ref())),
        not_before: cert.validity().not_before.timestamp(),
        not_after: cert.validity().not_after.timestamp(),
    })
}

/// The serial number as blackbox_exporter's `serialnumber` label writes it (Go's
/// `big.Int.Text(16)`): lowercase hex of the number, so without the DER sign byte or leading
/// zeros (`00a908…` is `a908…`).
fn serial_text(der_integer: &[u8]) -> String {
    let digits = hex(der_integer);
    let trimmed = digits.trim_start_matches('0');
    if trimmed.is_empty() {
        "0".to_string()
    } else {
        trimmed.to_string()
    }
}

fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// What a `kind = "tls"` probe checks.
#[derive(Debug, Clone)]
pub struct TlsExpect {
    /// The effective expiry must be at least this many days away.
    pub min_days_remaining: Option<f64>,
    /// A failed verification fails the probe (default true).
    pub verify: bool,
    pub min_version: Option<TlsVersion>,
}

impl Default for TlsExpect {
    fn default() -> Self {
        Self {
            min_days_remaining: None,
            verify: true,
            min_version: None,
        }
    }
}

/// A `kind = "tls"` probe: connect, handshake, judge the certificate.
#[derive(Debug, Clone)]
pub struct TlsSpec {
    pub host: String,
    pub port: u16,
    /// SNI and the name checked against the certificate; default `host`.
    pub server_name: Option<String>,
    pub ip: IpFamily,
    pub timeout: Duration,
    pub client: TlsClient,
    pub expect: TlsExpect,
    /// Addresses this probe may not connect to.
    pub filter: Option<crate::net::AddressFilter>,
}

/// Run one TLS probe. `scheduled` is when the run was due: a late start counts as latency.
pub async fn run_tls(spec: &TlsSpec, clock: &Clock, scheduled: Instant) -> Outcome {
    let mut phases = Phases::default();
    let mut conn = ConnFacts::default();
    let deadline = crate::deadline(scheduled, spec.timeout);
    let result =
        tokio::time::timeout_at(deadline, tls_inner(spec, clock, &mut phases, &mut conn)).await;
    let end = Instant::now();
    let result = result.unwrap_or_else(|_| {
        let phase = conn.in_progress;
        charge_timeout(&mut phases, phase, end.saturating_duration_since(scheduled));
        Err(Failure::new(
            Reason::Timeout,
            timeout_evidence(spec.timeout, phase),
        ))
    });
    crate::finish_at(
        end,
        scheduled,
        phases,
        Facts::new(conn, KindFacts::Tls),
        result,
    )
}

async fn tls_inner(
    spec: &TlsSpec,
    clock: &Clock,
    phases: &mut Phases,
    facts: &mut ConnFacts,
) -> Result<String, Failure> {
    facts.in_progress = Phase::Resolve;
    let addr = net::resolve(
        &spec.host,
        spec.port,
        spec.ip,
        spec.filter.as_ref(),
        &mut phases.resolve,
    )
    .await?;
    facts.ip_protocol = Some(net::family_number(&addr));
    facts.ip_addr_hash = Some(net::ip_addr_hash(addr.ip()));
    facts.in_progress = Phase::Connect;
    let tcp = net::connect(addr, &mut phases.connect).await?;
    let name = spec.server_name.as_deref().unwrap_or(&spec.host);
    facts.in_progress = Phase::Tls;
    let (_stream, tls) = spec
        .client
        .handshake(tcp, name, clock, &mut phases.tls)
        .await?;
    let now = clock.unix_secs();
    let verdict = check_certificate(
        &tls,
        spec.expect.verify,
        spec.expect.min_days_remaining,
        now,
    );
    let version_ok = spec
        .expect
        .min_version
        .is_none_or(|min| TlsVersion::parse(&tls.version).is_some_and(|v| v >= min));
    let summary = format!(
        "{addr}, TLS {} {}, {}",
        tls.version,
        tls.cipher,
        describe_expiry(&tls, now)
    );
    facts.tls = Some(tls.clone());
    verdict.map_err(|f| Failure::new(f.reason, format!("{}; {summary}", f.evidence)))?;
    if !version_ok {
        return Err(Failure::new(
            Reason::TlsHandshake,
            format!(
                "negotiated TLS {} is below the required {}; {summary}",
                tls.version,
                spec.expect
                    .min_version
                    .map(TlsVersion::as_str)
                    .unwrap_or_default()
            ),
        ));
    }
    Ok(summary)
}

/// The verification and expiry rules shared by TLS probes and HTTPS probes.
pub(crate) fn check_certificate(
    tls: &TlsFacts,
    verify: bool,
    min_days: Option<f64>,
    now: i64,
) -> Result<(), Failure> {
    if verify && tls.verify_result != VerifyResult::Ok {
        return Err(Failure::new(
            Reason::TlsVerify,
            format!(
                "certificate verification failed ({}): {}",
                tls.verify_result,
                tls.verify_detail.as_deref().unwrap_or("no detail")
            ),
        ));
    }
    if let Some(min) = min_days {
        let days = tls.days_left(now);
        if days < min {
            return Err(Failure::new(
                Reason::CertExpiring,
                format!(
                    "certificate expires in {:.1} days (effective expiry {}), required at least {min} days",
                    days_left_tenths(tls, now),
                    tls.effective_not_after
                ),
            ));
        }
    }
    Ok(())
}

/// Days from now until the effective expiry, truncated to a tenth: 4.99 days must not read as
/// 5.0 in a message that says it is below 5.
pub fn days_left_tenths(tls: &TlsFacts, now: i64) -> f64 {
    let days = tls.days_left(now);
    (days * 10.0).floor() / 10.0
}

/// "expires in 9 days" / "expired 3 days ago", from the effective expiry.
pub fn describe_expiry(tls: &TlsFacts, now: i64) -> String {
    let days = tls.days_left(now);
    if days >= 0.0 {
        format!("certificate expires in {} days", days.floor() as i64)
    } else {
        format!("certificate expired {} days ago", (-days).ceil() as i64)
    }
}
