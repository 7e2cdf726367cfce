//! Senders: how a delivery leaves the machine. Each is a trait so that tests
//! and deployments plug in their own.

use crate::targets::{GuardedResolver, Refused, TargetPolicy};
use futures_util::future::BoxFuture;
use std::sync::Arc;
use std::time::Duration;

/// The outcome of a send: the HTTP status when the target answered (any
/// status; the engine decides what counts as success), or a transport error.
pub type SendResult = Result<Option<u16>, String>;

/// HTTP POST sender.
pub trait HttpSender: Send + Sync + 'static {
    /// POSTs `body` to `url`.
    fn post<'a>(
        &'a self,
        url: &'a str,
        headers: &'a [(String, String)],
        content_type: &'a str,
        body: &'a str,
    ) -> BoxFuture<'a, SendResult>;
}

/// E-mail sender.
pub trait Mailer: Send + Sync + 'static {
    /// Sends one message; `Ok(None)` when accepted.
    fn send<'a>(&'a self, to: &'a str, subject: &'a str, body: &'a str) -> BoxFuture<'a, SendResult>;
}

/// Text-message sender.
pub trait SmsSender: Send + Sync + 'static {
    /// Sends one message; `Ok(None)` when accepted.
    fn send<'a>(&'a self, to: &'a str, body: &'a str) -> BoxFuture<'a, SendResult>;
}

/// The senders in force.
#[derive(Clone)]
pub struct Senders {
    pub http: Arc<dyn HttpSender>,
    pub mail: Arc<dyn Mailer>,
    pub sms: Arc<dyn SmsSender>,
    /// Which HTTP targets may be reached: checked when a target is
    /// registered, and by the HTTP sender at every send.
    pub targets: Arc<TargetPolicy>,
}

impl Senders {
    /// HTTP through reqwest with `timeout`, guarded by `targets`; e-mail and
    /// SMS kept local. Fails only when the HTTP client cannot be built.
    pub fn local(timeout: Duration, targets: TargetPolicy) -> Result<Self, String> {
        let targets = Arc::new(targets);
        Ok(Senders {
            http: Arc::new(ReqwestSender::guarded(timeout, targets.clone())?),
            mail: Arc::new(LocalMailer),
            sms: Arc::new(LocalSms),
            targets,
        })
    }
}

/// Installs rustls's ring provider as the process default, once: every TLS
/// client here (reqwest, lettre) uses the one rustls stack.
pub fn install_tls_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// HTTP sender over reqwest. Redirects are not followed: a webhook endpoint
/// answers for itself. No proxy from the environment is used: the address
/// check must see the target's own addresses.
pub struct ReqwestSender {
    client: reqwest::Client,
    /// The policy targets are checked against; `None` for URLs the operator
    /// configured (an SMS gateway), which may well be internal.
    guard: Option<Arc<TargetPolicy>>,
}

impl ReqwestSender {
    /// A sender for URLs the operator configured (no address check), whose
    /// every request gives up after `timeout`.
    pub fn new(timeout: Duration) -> Self {
        ReqwestSender { client: Self::builder(timeout).build().unwrap_or_else(|_| reqwest::Client::new()), guard: None }
    }

    /// A sender for targets that API clients registered: each request goes
    /// only to addresses `policy` allows, resolved and checked by
    /// [`GuardedResolver`] at connection time.
    /// Never falls back to an unguarded client: a client that cannot be
    /// built is an error at start.
    pub fn guarded(timeout: Duration, policy: Arc<TargetPolicy>) -> Result<Self, String> {
        let client = Self::builder(timeout)
            .dns_resolver(GuardedResolver::new(policy.clone()))
            .build()
            .map_err(|e| format!("building the guarded HTTP client: {e}"))?;
        Ok(ReqwestSender { client, guard: Some(policy) })
    }

    fn builder(timeout: Duration) -> reqwest::ClientBuilder {
        install_tls_provider();
        reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .user_agent(concat!("polyclinic/", env!("CARGO_PKG_VERSION")))
    }
}

/// Most bytes of a target's answer read (and dropped) so that its
/// connection can be kept alive; a longer answer's connection is closed.
const DRAINED: usize = 64 * 1024;

/// The refusal behind a failed request, when the guard caused it.
fn refusal<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a Refused> {
    let mut cause = Some(e);
    while let Some(c) = cause {
        if let Some(r) = c.downcast_ref::<Refused>() {
            return Some(r);
        }
        cause = c.source();
    }
    None
}

impl HttpSender for ReqwestSender {
    fn post<'a>(
        &'a self,
        url: &'a str,
        headers: &'a [(String, String)],
        content_type: &'a str,
        body: &'a str,
    ) -> BoxFuture<'a, SendResult> {
        Box::pin(async move {
            let parsed = reqwest::Url::parse(url).map_err(|e| format!("the target URL is invalid: {e}"))?;
            if let Some(policy) = &self.guard {
                // IP literals are connected to without resolving: checked here.
                policy.check_literal(&parsed).map_err(|r| format!("refused: {r}"))?;
            }
            let mut req =
                self.client.post(parsed).header(reqwest::header::CONTENT_TYPE, content_type).body(body.to_owned());
            for (k, v) in headers {
                req = req.header(k.as_str(), v.as_str());
            }
            match req.send().await {
                Ok(mut resp) => {
                    let status = resp.status().as_u16();
                    // A connection goes back to the pool, to be kept alive
                    // for the target's next delivery, only once its answer's
                    // body has been read: read up to DRAINED of it.
                    let mut read = 0;
                    while read < DRAINED
                        && let Ok(Some(chunk)) = resp.chunk().await
                    {
                        read += chunk.len();
                    }
                    Ok(Some(status))
                }
                Err(ref e) if let Some(r) = refusal(e) => Err(format!("refused: {r}")),
                Err(e) if e.is_timeout() => Err("timed out".into()),
                Err(e) if e.is_connect() => Err("connection failed".into()),
                Err(e) => Err(format!("request failed: {}", e.without_url())),
            }
        })
    }
}

/// The default mailer: nothing leaves the machine. The message stays in its
/// delivery record (`GET /admin/deliveries`), which is where it can be read.
pub struct LocalMailer;

impl Mailer for LocalMailer {
    fn send<'a>(&'a self, _to: &'a str, _subject: &'a str, _body: &'a str) -> BoxFuture<'a, SendResult> {
        Box::pin(async { Ok(None) })
    }
}

/// E-mail over SMTP (lettre, rustls). Configured by a URL:
/// `smtp://host:25` (plain), `smtp://user:pass@host:587?tls=required`
/// (STARTTLS) or `smtps://user:pass@host:465` (implicit TLS).
pub struct SmtpMailer {
    transport: lettre::AsyncSmtpTransport<lettre::Tokio1Executor>,
    from: lettre::message::Mailbox,
}

impl SmtpMailer {
    /// A mailer for `url`, sending as `from`.
    pub fn new(url: &str, from: &str, timeout: Duration) -> Result<Self, String> {
        install_tls_provider();
        let from = from.parse().map_err(|e| format!("the sender address `{from}` is invalid: {e}"))?;
        let transport = lettre::AsyncSmtpTransport::<lettre::Tokio1Executor>::from_url(url)
            .map_err(|e| format!("the SMTP URL is invalid: {e}"))?
            .timeout(Some(timeout))
            .build();
        Ok(SmtpMailer { transport, from })
    }
}

impl Mailer for SmtpMailer {
    fn send<'a>(&'a self, to: &'a str, subject: &'a str, body: &'a str) -> BoxFuture<'a, SendResult> {
        use lettre::AsyncTransport;
        Box::pin(async move {
            let to = to.parse().map_err(|e| format!("invalid recipient: {e}"))?;
            let message = lettre::Message::builder()
                .from(self.from.clone())
                .to(to)
                .subject(subject)
                .header(lettre::message::header::ContentType::TEXT_PLAIN)
                .body(body.to_owned())
                .map_err(|e| format!("cannot build the message: {e}"))?;
            match self.transport.send(message).await {
                Ok(_) => Ok(None),
                Err(e) if e.is_permanent() => Err(format!("rejected by the SMTP server: {e}")),
                Err(e) => Err(format!("SMTP failed: {e}")),
            }
        })
    }
}

/// The default SMS sender: nothing leaves the machine (see [`LocalMailer`]).
pub struct LocalSms;

impl SmsSender for LocalSms {
    fn send<'a>(&'a self, _to: &'a str, _body: &'a str) -> BoxFuture<'a, SendResult> {
        Box::pin(async { Ok(None) })
    }
}

/// SMS through an HTTP gateway: POSTs `{"to": ..., "body": ...}` as JSON to a
/// configured URL; a 2xx means accepted.
pub struct SmsGateway {
    pub url: String,
    pub http: Arc<dyn HttpSender>,
}

impl SmsSender for SmsGateway {
    fn send<'a>(&'a self, to: &'a str, body: &'a str) -> BoxFuture<'a, SendResult> {
        Box::pin(async move {
            let payload = serde_json::json!({"to": to, "body": body}).to_string();
            let status = self.http.post(&self.url, &[], "application/json", &payload).await?;
            match status {
                Some(s) if (200..300).contains(&s) => Ok(None),
                other => Ok(other),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_guarded_sender_refuses_internal_targets_before_connecting() {
        let strict = Arc::new(TargetPolicy::new(false, Vec::<String>::new()));
        let sender = ReqwestSender::guarded(Duration::from_secs(2), strict).unwrap();
        // `localhost` goes through the resolver; the literal is checked first.
        for url in ["http://localhost:9/hook", "http://127.0.0.1:9/hook", "http://[::ffff:127.0.0.1]:9/hook"] {
            let e = sender.post(url, &[], "application/json", "{}").await.unwrap_err();
            assert!(e.starts_with("refused: ") && e.contains("loopback"), "{url}: {e}");
        }
    }

    #[tokio::test]
    async fn a_targets_connection_is_kept_alive_after_an_answer_with_a_body() {
        use std::net::SocketAddr;
        use std::sync::Mutex;
        // A target answering every notification with a body, noting the
        // peer address (one per connection) of each.
        let peers: Arc<Mutex<Vec<SocketAddr>>> = Arc::default();
        let noted = peers.clone();
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |axum::extract::ConnectInfo(peer): axum::extract::ConnectInfo<SocketAddr>| {
                let noted = noted.clone();
                async move {
                    noted.lock().unwrap().push(peer);
                    "x".repeat(16 * 1024)
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move {
            axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>()).await.unwrap();
        });
        let sender = ReqwestSender::new(Duration::from_secs(5));
        for _ in 0..5 {
            assert_eq!(sender.post(&url, &[], "application/json", "{}").await, Ok(Some(200)));
        }
        let peers = peers.lock().unwrap();
        assert_eq!(peers.len(), 5);
        assert!(peers.iter().all(|p| *p == peers[0]), "one connection for the five sends: {peers:?}");
    }
}
