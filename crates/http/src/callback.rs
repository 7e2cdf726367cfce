//! The one check of a callback URL an API client registers (an Embassy
//! rest-hook subscription endpoint, a Solo webhook endpoint), before the
//! delivery engine's target guard (`polyclinic_delivery::targets`) looks at
//! where it resolves: an absolute `http`/`https` URL with a host, no
//! credentials in it, and not this server itself (a notification loop).
//! Each dialect words the refusal in its own error shape.

use crate::AppState;

/// Why a callback URL is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallbackRefused {
    /// Not an absolute URL.
    NotAUrl,
    /// Not `http` or `https`.
    NotHttp,
    /// No host.
    NoHost,
    /// A user or password in the URL.
    Credentials,
    /// It names this server (its public origin, or its port on loopback).
    ThisServer,
}

impl std::fmt::Display for CallbackRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            CallbackRefused::NotAUrl => "not an absolute URL",
            CallbackRefused::NotHttp => "the URL must be http or https",
            CallbackRefused::NoHost => "the URL has no host",
            CallbackRefused::Credentials => "credentials in the URL are not accepted",
            CallbackRefused::ThisServer => "it points at this server",
        })
    }
}

impl AppState {
    /// Checks `endpoint` as a callback URL (see the module doc).
    pub fn check_callback_url(&self, endpoint: &str) -> Result<url::Url, CallbackRefused> {
        let url = url::Url::parse(endpoint).map_err(|_| CallbackRefused::NotAUrl)?;
        if url.scheme() != "http" && url.scheme() != "https" {
            return Err(CallbackRefused::NotHttp);
        }
        let host = url.host_str().ok_or(CallbackRefused::NoHost)?.trim_matches(['[', ']']).to_ascii_lowercase();
        if !url.username().is_empty() || url.password().is_some() {
            return Err(CallbackRefused::Credentials);
        }
        let port = url.port_or_known_default().unwrap_or(0);
        let own = url::Url::parse(&self.public_url).ok();
        let is_own_origin = own.as_ref().is_some_and(|o| {
            o.host_str().map(str::to_ascii_lowercase).as_deref() == Some(host.as_str())
                && o.port_or_known_default() == Some(port)
        });
        let is_loopback = host == "localhost"
            || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback() || ip.is_unspecified());
        if is_own_origin || (is_loopback && port == self.local_port) {
            return Err(CallbackRefused::ThisServer);
        }
        Ok(url)
    }
}
