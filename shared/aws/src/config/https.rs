//! The HTTPS client every AWS client sends its requests through: hyper's HTTP/1.1 client over
//! rustls (ring), behind the SDK's `HttpClient` trait.
//!
//! AWS's endpoints answer HTTP/1.1, and an event's dozen requests gain nothing from HTTP/2's
//! streams. The SDK's own client always builds hyper with HTTP/2 too: `h2`, hyper's HTTP/2
//! code and the client's own pool routing and proxy code were 0.34 MB of every function, for
//! no request.
//! What that client does for a request is kept here: a pool of kept-alive connections, the
//! connect and read timeouts of the SDK's settings, errors sorted the way its retries expect,
//! and a connection the SDK finds broken taken out of the pool.

use std::error::Error as StdError;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::connection::{CaptureSmithyConnection, ConnectionMetadata};
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
    SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::retry::ErrorKind;
use http::Uri;
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::{
    CaptureConnection, HttpConnector as TcpConnector, HttpInfo, capture_connection,
};
use hyper_util::rt::{TokioExecutor, TokioTimer};

use super::trust::Roots;

/// An HTTPS client trusting `roots`. Its TLS settings are built when the first request needs
/// them (a function's init reads no certificate); a trust store that cannot be had fails each
/// request with the reason, as a connection that cannot be made would.
pub fn client(roots: Roots) -> SharedHttpClient {
    SharedHttpClient::new(HttpsClient {
        roots,
        tls: OnceLock::new(),
        connectors: Mutex::default(),
    })
}

/// The connect and read timeouts a connector applies.
type Timeouts = (Option<Duration>, Option<Duration>);

#[derive(Debug)]
struct HttpsClient {
    roots: Roots,
    tls: OnceLock<Result<Arc<rustls::ClientConfig>, Arc<str>>>,
    /// One connector, and so one pool, per pair of timeouts the SDK asks for (it asks again
    /// for every request; a function's clients share one pair).
    connectors: Mutex<Vec<(Timeouts, SharedHttpConnector)>>,
}

impl HttpClient for HttpsClient {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        _components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        let timeouts = (settings.connect_timeout(), settings.read_timeout());
        // A panic while the list was held left it whole: a connector is added in one step.
        let mut connectors = self
            .connectors
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some((_, connector)) = connectors.iter().find(|(made, _)| *made == timeouts) {
            return connector.clone();
        }
        let connector = self.connector(timeouts);
        connectors.push((timeouts, connector.clone()));
        connector
    }
}

impl HttpsClient {
    fn connector(&self, (connect_timeout, read_timeout): Timeouts) -> SharedHttpConnector {
        let tls = self
            .tls
            .get_or_init(|| tls_config(self.roots).map(Arc::new).map_err(Arc::from));
        match tls {
            Ok(tls) => SharedHttpConnector::new(Connector::new(tls, connect_timeout, read_timeout)),
            Err(reason) => SharedHttpConnector::new(Untrusting(reason.clone())),
        }
    }
}

/// TLS 1.2 and 1.3 with [`offered`]'s algorithms on ring, trusting `roots`.
fn tls_config(roots: Roots) -> Result<rustls::ClientConfig, String> {
    let store = roots.store().map_err(|error| error.to_string())?;
    trusting(store)
}

fn trusting(store: rustls::RootCertStore) -> Result<rustls::ClientConfig, String> {
    Ok(
        rustls::ClientConfig::builder_with_provider(Arc::new(offered()))
            .with_safe_default_protocol_versions()
            .map_err(|error| format!("the TLS settings: {error}"))?
            .with_root_certificates(store)
            .with_no_client_auth(),
    )
}

/// What a handshake offers: rustls's defaults on ring, in its order, without ChaCha20-Poly1305,
/// the cipher for processors without AES instructions (Lambda's have them). That leaves TLS
/// 1.3 and TLS 1.2's ECDHE suites with AES-GCM (TLS 1.3's mandatory suite is one, RFC 8446
/// section 9.1), the key exchanges X25519, P-256 and P-384, and every certificate signature
/// rustls checks. A test holds the rest to rustls's defaults.
///
/// Built field by field: rustls's `default_provider()` names every suite it has, and what a
/// program names is linked into it (ChaCha20-Poly1305's code was 50 kB of every function).
fn offered() -> rustls::crypto::CryptoProvider {
    use rustls::crypto::ring::{cipher_suite, kx_group};
    rustls::crypto::CryptoProvider {
        cipher_suites: vec![
            cipher_suite::TLS13_AES_256_GCM_SHA384,
            cipher_suite::TLS13_AES_128_GCM_SHA256,
            cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
            cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
            cipher_suite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
            cipher_suite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
        ],
        kx_groups: vec![kx_group::X25519, kx_group::SECP256R1, kx_group::SECP384R1],
        signature_verification_algorithms: CERTIFICATE_CHECKS,
        secure_random: &Ring,
        key_provider: &Ring,
    }
}

/// rustls's certificate signature checks on ring, as its `default_provider()` has them.
static CERTIFICATE_CHECKS: rustls::crypto::WebPkiSupportedAlgorithms = {
    use rustls::SignatureScheme as Scheme;
    use webpki::ring as check;
    rustls::crypto::WebPkiSupportedAlgorithms {
        all: &[
            check::ECDSA_P256_SHA256,
            check::ECDSA_P256_SHA384,
            check::ECDSA_P384_SHA256,
            check::ECDSA_P384_SHA384,
            check::ED25519,
            check::RSA_PSS_2048_8192_SHA256_LEGACY_KEY,
            check::RSA_PSS_2048_8192_SHA384_LEGACY_KEY,
            check::RSA_PSS_2048_8192_SHA512_LEGACY_KEY,
            check::RSA_PKCS1_2048_8192_SHA256,
            check::RSA_PKCS1_2048_8192_SHA384,
            check::RSA_PKCS1_2048_8192_SHA512,
            check::RSA_PKCS1_2048_8192_SHA256_ABSENT_PARAMS,
            check::RSA_PKCS1_2048_8192_SHA384_ABSENT_PARAMS,
            check::RSA_PKCS1_2048_8192_SHA512_ABSENT_PARAMS,
        ],
        // In TLS 1.2 a scheme does not fix the curve; in TLS 1.3 it does.
        mapping: &[
            (
                Scheme::ECDSA_NISTP384_SHA384,
                &[check::ECDSA_P384_SHA384, check::ECDSA_P256_SHA384],
            ),
            (
                Scheme::ECDSA_NISTP256_SHA256,
                &[check::ECDSA_P256_SHA256, check::ECDSA_P384_SHA256],
            ),
            (Scheme::ED25519, &[check::ED25519]),
            (
                Scheme::RSA_PSS_SHA512,
                &[check::RSA_PSS_2048_8192_SHA512_LEGACY_KEY],
            ),
            (
                Scheme::RSA_PSS_SHA384,
                &[check::RSA_PSS_2048_8192_SHA384_LEGACY_KEY],
            ),
            (
                Scheme::RSA_PSS_SHA256,
                &[check::RSA_PSS_2048_8192_SHA256_LEGACY_KEY],
            ),
            (
                Scheme::RSA_PKCS1_SHA512,
                &[check::RSA_PKCS1_2048_8192_SHA512],
            ),
            (
                Scheme::RSA_PKCS1_SHA384,
                &[check::RSA_PKCS1_2048_8192_SHA384],
            ),
            (
                Scheme::RSA_PKCS1_SHA256,
                &[check::RSA_PKCS1_2048_8192_SHA256],
            ),
        ],
    }
};

/// ring's randomness, as rustls's provider has it, and the key loading every provider must
/// have: a client that presents no certificate never loads a key.
#[derive(Debug)]
struct Ring;

impl rustls::crypto::SecureRandom for Ring {
    fn fill(&self, buf: &mut [u8]) -> Result<(), rustls::crypto::GetRandomFailed> {
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), buf)
            .map_err(|_| rustls::crypto::GetRandomFailed)
    }
}

impl rustls::crypto::KeyProvider for Ring {
    fn load_private_key(
        &self,
        key: rustls::pki_types::PrivateKeyDer<'static>,
    ) -> Result<Arc<dyn rustls::sign::SigningKey>, rustls::Error> {
        rustls::crypto::ring::sign::any_supported_type(&key)
    }
}

/// Requests over one pool of connections, HTTPS or (for a local emulator) plain HTTP.
#[derive(Debug)]
struct Connector {
    client: Client<ConnectWithin<HttpsConnector<TcpConnector>>, SdkBody>,
    read_timeout: Option<Duration>,
}

impl Connector {
    fn new(
        tls: &rustls::ClientConfig,
        connect_timeout: Option<Duration>,
        read_timeout: Option<Duration>,
    ) -> Self {
        let mut tcp = TcpConnector::new();
        // The `https` scheme is the TLS layer's to handle.
        tcp.enforce_http(false);
        // A request goes out whole at once, not after the previous one's acknowledgement.
        tcp.set_nodelay(true);
        let https = HttpsConnectorBuilder::new()
            .with_tls_config(tls.clone())
            .https_or_http()
            .enable_http1()
            .wrap_connector(tcp);
        let client = Client::builder(TokioExecutor::new())
            // The pool's timer: without it, idle connections are never closed.
            .pool_timer(TokioTimer::new())
            .build(ConnectWithin {
                inner: https,
                limit: connect_timeout,
            });
        Connector {
            client,
            read_timeout,
        }
    }
}

impl HttpConnector for Connector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let mut request = match request.try_into_http1x() {
            Ok(request) => request,
            Err(error) => {
                return HttpConnectorFuture::ready(Err(ConnectorError::user(error.into())));
            }
        };
        // The SDK takes a connection out of the pool after an error that may have broken it.
        let captured = capture_connection(&mut request);
        if let Some(capture) = request.extensions().get::<CaptureSmithyConnection>() {
            capture.set_connection_retriever(move || connection_metadata(&captured));
        }
        let response = self.client.request(request);
        let read_timeout = self.read_timeout;
        HttpConnectorFuture::new(async move {
            let response = match read_timeout {
                None => response.await,
                Some(limit) => match tokio::time::timeout(limit, response).await {
                    Ok(response) => response,
                    Err(_) => {
                        return Err(ConnectorError::timeout(Box::new(TimedOut::Response(limit))));
                    }
                },
            };
            match response {
                Ok(response) => HttpResponse::try_from(response.map(SdkBody::from_body_1_x))
                    .map_err(|error| ConnectorError::other(error.into(), None)),
                Err(error) => Err(classify(error)),
            }
        })
    }
}

fn connection_metadata(captured: &CaptureConnection) -> Option<ConnectionMetadata> {
    let connected = captured.connection_metadata();
    let connected = connected.as_ref()?;
    let mut extras = http::Extensions::new();
    connected.get_extras(&mut extras);
    let info = extras.get::<HttpInfo>();
    let poisoned = captured.clone();
    let mut metadata = ConnectionMetadata::builder()
        .proxied(connected.is_proxied())
        .poison_fn(move || {
            if let Some(connection) = poisoned.connection_metadata().as_ref() {
                connection.poison();
            }
        });
    metadata
        .set_local_addr(info.map(HttpInfo::local_addr))
        .set_remote_addr(info.map(HttpInfo::remote_addr));
    Some(metadata.build())
}

/// A connector that gives up on a connection (TCP and TLS handshake) after `limit`.
#[derive(Debug, Clone)]
struct ConnectWithin<C> {
    inner: C,
    limit: Option<Duration>,
}

impl<C> tower_service::Service<Uri> for ConnectWithin<C>
where
    C: tower_service::Service<Uri>,
    C::Response: Send + 'static,
    C::Error: Into<BoxError>,
    C::Future: Send + 'static,
{
    type Response = C::Response;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<C::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let connecting = self.inner.call(uri);
        let limit = self.limit;
        Box::pin(async move {
            match limit {
                None => connecting.await.map_err(Into::into),
                Some(limit) => match tokio::time::timeout(limit, connecting).await {
                    Ok(connected) => connected.map_err(Into::into),
                    Err(_) => Err(Box::new(TimedOut::Connect(limit)) as BoxError),
                },
            }
        })
    }
}

#[derive(Debug, thiserror::Error)]
enum TimedOut {
    #[error("no connection within {0:?}")]
    Connect(Duration),
    #[error("no response within {0:?}")]
    Response(Duration),
}

/// Every request fails with why the client trusts nothing.
#[derive(Debug)]
struct Untrusting(Arc<str>);

impl HttpConnector for Untrusting {
    fn call(&self, _request: HttpRequest) -> HttpConnectorFuture {
        let reason = format!("no HTTPS connection can be trusted: {}", self.0);
        HttpConnectorFuture::ready(Err(ConnectorError::other(reason.into(), None)))
    }
}

/// Sorts a failed request the way the SDK's retries read it: a timeout or an I/O error (a
/// refused, reset or closed connection) is tried again; a TLS refusal (a certificate or name
/// the roots do not vouch for, an alert) is not, since another attempt meets the same.
fn classify(error: hyper_util::client::legacy::Error) -> ConnectorError {
    let causes: Vec<&(dyn StdError + 'static)> = causes(&error).collect();
    let found = |test: fn(&(dyn StdError + 'static)) -> bool| causes.iter().any(|e| test(*e));
    let error_kind = if found(|e| e.is::<TimedOut>()) {
        Kind::Timeout
    } else if found(|e| e.is::<rustls::Error>()) {
        Kind::Refused
    } else if let Some(hyper) = causes.iter().find_map(|e| e.downcast_ref::<hyper::Error>()) {
        if hyper.is_timeout() {
            Kind::Timeout
        } else if hyper.is_user() {
            Kind::User
        } else if hyper.is_closed() || hyper.is_canceled() || found(|e| e.is::<std::io::Error>()) {
            Kind::Io
        } else if hyper.is_incomplete_message() {
            Kind::Transient
        } else {
            Kind::Other
        }
    } else if error.is_connect() || found(|e| e.is::<std::io::Error>()) {
        Kind::Io
    } else {
        Kind::Other
    };
    let error: BoxError = Box::new(error);
    match error_kind {
        Kind::Timeout => ConnectorError::timeout(error),
        Kind::Io => ConnectorError::io(error),
        Kind::User => ConnectorError::user(error),
        Kind::Transient => ConnectorError::other(error, Some(ErrorKind::TransientError)),
        Kind::Refused | Kind::Other => ConnectorError::other(error, None),
    }
}

enum Kind {
    Timeout,
    Io,
    User,
    Transient,
    Refused,
    Other,
}

/// `error` and each error after it. After an `io::Error` comes its payload: its `source()`
/// skips the payload, where rustls's and the timeouts' errors are.
fn causes<'a>(
    error: &'a (dyn StdError + 'static),
) -> impl Iterator<Item = &'a (dyn StdError + 'static)> {
    std::iter::successors(
        Some(error),
        |&error: &&'a (dyn StdError + 'static)| match error
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::get_ref)
        {
            Some(payload) => Some(payload as &(dyn StdError + 'static)),
            None => error.source(),
        },
    )
}

#[cfg(test)]
#[allow(clippy::expect_used)]
mod tests {
    use super::*;

    use std::sync::atomic::{AtomicUsize, Ordering};

    use aws_smithy_runtime_api::client::runtime_components::RuntimeComponentsBuilder;
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    /// An authority, and a server certificate for `localhost` it signed.
    struct Authority {
        root: CertificateDer<'static>,
        server: rustls::ServerConfig,
    }

    fn authority() -> Authority {
        authority_offering(rustls::crypto::ring::default_provider())
    }

    /// An authority whose server offers only `provider`'s algorithms.
    fn authority_offering(provider: rustls::crypto::CryptoProvider) -> Authority {
        let root_key = KeyPair::generate().expect("a key");
        let mut root = CertificateParams::new(Vec::<String>::new()).expect("root parameters");
        root.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let root_certificate = root.self_signed(&root_key).expect("a root");
        let issuer = Issuer::new(root, root_key);
        let server_key = KeyPair::generate().expect("a key");
        let server_certificate = CertificateParams::new(vec!["localhost".to_owned()])
            .expect("server parameters")
            .signed_by(&server_key, &issuer)
            .expect("a server certificate");
        let server = rustls::ServerConfig::builder_with_provider(Arc::new(provider))
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_no_client_auth()
            .with_single_cert(
                vec![server_certificate.der().clone()],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(server_key.serialize_der())),
            )
            .expect("a server configuration");
        Authority {
            root: root_certificate.der().clone(),
            server,
        }
    }

    fn trusting_root(root: &CertificateDer<'static>) -> rustls::ClientConfig {
        let mut store = rustls::RootCertStore::empty();
        store.add(root.clone()).expect("the root");
        trusting(store).expect("TLS settings")
    }

    /// What a test server saw.
    #[derive(Default)]
    struct Seen {
        connections: AtomicUsize,
        requests: AtomicUsize,
    }

    /// How a test server treats each connection.
    #[derive(Clone, Copy)]
    enum Serve {
        /// Answers each request `200 ok`, keeping the connection.
        Answer,
        /// Reads requests and never answers.
        Silent,
        /// Accepts the connection and never says anything: a TLS handshake stalls.
        Mute,
    }

    async fn server(
        tls: Option<rustls::ServerConfig>,
        serve: Serve,
    ) -> (std::net::SocketAddr, Arc<Seen>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address");
        let seen = Arc::new(Seen::default());
        let acceptor = tls.map(|tls| tokio_rustls::TlsAcceptor::from(Arc::new(tls)));
        let counted = seen.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                counted.connections.fetch_add(1, Ordering::SeqCst);
                let seen = counted.clone();
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    match (serve, acceptor) {
                        (Serve::Mute, _) => {
                            let _held = stream;
                            std::future::pending::<()>().await;
                        }
                        (_, Some(acceptor)) => {
                            if let Ok(stream) = acceptor.accept(stream).await {
                                respond(stream, serve, &seen).await;
                            }
                        }
                        (_, None) => respond(stream, serve, &seen).await,
                    }
                });
            }
        });
        (address, seen)
    }

    async fn respond<S>(mut stream: S, serve: Serve, seen: &Seen)
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    {
        let mut received = Vec::new();
        let mut buffer = [0_u8; 1024];
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(read) => received.extend_from_slice(&buffer[..read]),
            }
            // The tests' requests have no body: a request ends with its headers.
            while let Some(end) = received.windows(4).position(|w| w == b"\r\n\r\n") {
                received.drain(..end + 4);
                seen.requests.fetch_add(1, Ordering::SeqCst);
                if let Serve::Answer = serve {
                    let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                    if stream.write_all(answer).await.is_err() {
                        return;
                    }
                }
            }
        }
    }

    fn get(url: &str) -> HttpRequest {
        let request = http::Request::builder()
            .uri(url)
            .body(SdkBody::empty())
            .expect("a request");
        HttpRequest::try_from(request).expect("an SDK request")
    }

    #[tokio::test]
    async fn a_request_goes_over_tls_to_a_server_the_roots_vouch_for_on_one_kept_connection() {
        let authority = authority();
        let (address, seen) = server(Some(authority.server), Serve::Answer).await;
        let connector = Connector::new(&trusting_root(&authority.root), None, None);
        let url = format!("https://localhost:{}/", address.port());
        for _ in 0..2 {
            let response = connector.call(get(&url)).await.expect("an answer");
            assert_eq!(response.status().as_u16(), 200);
            assert_eq!(response.body().bytes(), None, "streamed, not yet read");
        }
        assert_eq!(seen.requests.load(Ordering::SeqCst), 2);
        assert_eq!(seen.connections.load(Ordering::SeqCst), 1, "kept alive");
    }

    #[tokio::test]
    async fn a_certificate_another_authority_signed_is_refused_and_not_retried() {
        let (address, seen) = server(Some(authority().server), Serve::Answer).await;
        let connector = Connector::new(&trusting_root(&authority().root), None, None);
        let url = format!("https://localhost:{}/", address.port());
        let error = connector.call(get(&url)).await.expect_err("refused");
        assert!(error.is_other(), "{error:?}");
        assert_eq!(error.as_other(), None, "not transient: {error:?}");
        assert!(causes(&error).any(|e| e.is::<rustls::Error>()), "{error:?}");
        assert_eq!(seen.requests.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn the_client_offers_rustls_defaults_without_chacha20_in_their_order() {
        let ours = offered();
        let theirs = rustls::crypto::ring::default_provider();
        let suites = |provider: &rustls::crypto::CryptoProvider| {
            provider
                .cipher_suites
                .iter()
                .map(|suite| suite.suite())
                .filter(|suite| !format!("{suite:?}").contains("CHACHA20"))
                .collect::<Vec<_>>()
        };
        assert_eq!(suites(&ours).len(), ours.cipher_suites.len(), "no ChaCha20");
        assert_eq!(suites(&ours), suites(&theirs));
        let groups = |provider: &rustls::crypto::CryptoProvider| {
            provider
                .kx_groups
                .iter()
                .map(|group| group.name())
                .collect::<Vec<_>>()
        };
        assert_eq!(groups(&ours), groups(&theirs));
        let ids = |all: &[&dyn rustls::pki_types::SignatureVerificationAlgorithm]| {
            all.iter()
                .map(|check| (check.public_key_alg_id(), check.signature_alg_id()))
                .collect::<Vec<_>>()
        };
        let (ours, theirs) = (
            ours.signature_verification_algorithms,
            theirs.signature_verification_algorithms,
        );
        assert_eq!(ids(ours.all), ids(theirs.all));
        assert_eq!(ours.mapping.len(), theirs.mapping.len());
        for ((scheme, checks), (their_scheme, their_checks)) in
            ours.mapping.iter().zip(theirs.mapping)
        {
            assert_eq!(scheme, their_scheme);
            assert_eq!(ids(checks), ids(their_checks), "{scheme:?}");
        }
    }

    #[tokio::test]
    async fn a_server_that_only_speaks_chacha20_is_refused_and_not_retried() {
        use rustls::crypto::ring::{cipher_suite, default_provider};
        let authority = authority_offering(rustls::crypto::CryptoProvider {
            cipher_suites: vec![
                cipher_suite::TLS13_CHACHA20_POLY1305_SHA256,
                cipher_suite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
            ],
            ..default_provider()
        });
        let (address, seen) = server(Some(authority.server), Serve::Answer).await;
        let connector = Connector::new(&trusting_root(&authority.root), None, None);
        let url = format!("https://localhost:{}/", address.port());
        let error = connector
            .call(get(&url))
            .await
            .expect_err("no common suite");
        assert!(error.is_other(), "{error:?}");
        assert_eq!(error.as_other(), None, "not transient: {error:?}");
        assert!(causes(&error).any(|e| e.is::<rustls::Error>()), "{error:?}");
        assert_eq!(seen.requests.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn a_handshake_that_stalls_is_a_connect_timeout() {
        let authority = authority();
        let (address, _) = server(Some(authority.server), Serve::Mute).await;
        let limit = Duration::from_millis(200);
        let connector = Connector::new(&trusting_root(&authority.root), Some(limit), None);
        let url = format!("https://localhost:{}/", address.port());
        let error = connector.call(get(&url)).await.expect_err("timed out");
        assert!(error.is_timeout(), "{error:?}");
    }

    #[tokio::test]
    async fn an_answer_that_does_not_come_is_a_read_timeout() {
        let (address, seen) = server(None, Serve::Silent).await;
        let limit = Duration::from_millis(200);
        let connector = Connector::new(&trusting_root(&authority().root), None, Some(limit));
        let url = format!("http://127.0.0.1:{}/", address.port());
        let error = connector.call(get(&url)).await.expect_err("timed out");
        assert!(error.is_timeout(), "{error:?}");
        assert_eq!(seen.requests.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_refused_connection_is_an_io_error_the_sdk_retries() {
        // A port just freed: nothing listens on it.
        let port = {
            let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
            listener.local_addr().expect("address").port()
        };
        assert!(
            TcpStream::connect(("127.0.0.1", port)).await.is_err(),
            "the port is free"
        );
        let connector = Connector::new(&trusting_root(&authority().root), None, None);
        let error = connector
            .call(get(&format!("http://127.0.0.1:{port}/")))
            .await
            .expect_err("refused");
        assert!(error.is_io(), "{error:?}");
    }

    #[test]
    fn the_client_keeps_one_connector_per_pair_of_timeouts() {
        let client = HttpsClient {
            roots: Roots::AmazonTrustServices,
            tls: OnceLock::new(),
            connectors: Mutex::default(),
        };
        let components = RuntimeComponentsBuilder::for_tests()
            .build()
            .expect("components");
        let settings = |seconds| {
            HttpConnectorSettings::builder()
                .connect_timeout(Duration::from_secs(seconds))
                .build()
        };
        for seconds in [3, 3, 5, 3] {
            client.http_connector(&settings(seconds), &components);
        }
        assert_eq!(client.connectors.lock().expect("the map").len(), 2);
        assert!(
            matches!(client.tls.get(), Some(Ok(_))),
            "the built-in roots make a trust store"
        );
    }

    #[tokio::test]
    async fn a_client_with_no_roots_to_trust_fails_each_request_with_the_reason() {
        let connector = Untrusting(Arc::from("no usable root certificate"));
        let error = connector
            .call(get("https://sns.us-east-1.amazonaws.com/"))
            .await
            .expect_err("untrusting");
        assert!(error.is_other(), "{error:?}");
        assert!(
            format!("{error:?}").contains("no usable root certificate"),
            "{error:?}"
        );
    }
}
