//! Who may drive zipgate's own routes under `/_zipgate/` (the control plane
//! and the zip route): not a web page the developer happens to open.
//!
//! - The `Host` must be a loopback name or address (`localhost`,
//!   `127.0.0.0/8`, `[::1]`, any port), the `--public-url` host, or one named
//!   with `--allow-host`: a page that reaches the server by DNS rebinding
//!   sends its own domain as the Host. `--allow-host '*'` turns this off (for
//!   proxies that pass any Host through).
//! - A request without a `Host` (HTTP/1.0) passes: browsers always send one,
//!   and any other client could as well have sent `Host: localhost`.
//! - An `Origin`, when present, must be the server's own (the Host's, or
//!   `--public-url`'s): browsers send it on cross-site requests, so a page
//!   cannot make the developer's browser post to the control plane (CSRF).
//! - Routes that change state take only `application/json` bodies, which a
//!   page cannot send cross-site without a CORS preflight that zipgate never
//!   answers (`json_only`).

use std::net::{Ipv4Addr, Ipv6Addr};

use http::{header, HeaderMap, Request, Response, StatusCode};

use super::http::{self as h, Body};

/// A host name or address, lower case, IPv6 without brackets, and its port.
#[derive(Clone, Debug, PartialEq, Eq)]
struct HostPort {
    host: String,
    port: Option<u16>,
}

/// Splits `host[:port]` (`[v6][:port]` for IPv6); `None` for anything else.
fn parse_host_port(text: &str) -> Option<HostPort> {
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let (v6, after) = rest.split_once(']')?;
        v6.parse::<Ipv6Addr>().ok()?;
        let port = match after {
            "" => None,
            _ => Some(after.strip_prefix(':')?),
        };
        (v6, port)
    } else {
        match text.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (text, None),
        }
    };
    let port = match port {
        None => None,
        Some(digits) if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) => {
            Some(digits.parse().ok()?)
        }
        Some(_) => return None,
    };
    let name_ok = host.contains(':')
        || (!host.is_empty()
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_'));
    name_ok.then(|| HostPort {
        host: host.to_ascii_lowercase(),
        port,
    })
}

/// `scheme://host[:port]`, with the scheme's default port filled in.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Origin {
    scheme: String,
    host: String,
    port: u16,
}

fn default_port(scheme: &str) -> Option<u16> {
    match scheme {
        "http" => Some(80),
        "https" => Some(443),
        _ => None,
    }
}

/// An `Origin` header value, or a URL's origin (its path, if any, ignored).
fn parse_origin(text: &str, allow_path: bool) -> Option<Origin> {
    let (scheme, rest) = text.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    let authority = match rest.find('/') {
        Some(at) if allow_path => &rest[..at],
        Some(_) => return None,
        None => rest,
    };
    let host = parse_host_port(authority)?;
    Some(Origin {
        port: host.port.or_else(|| default_port(&scheme))?,
        host: host.host,
        scheme,
    })
}

fn is_loopback(host: &str) -> bool {
    host == "localhost"
        || host.parse::<Ipv4Addr>().is_ok_and(|ip| ip.is_loopback())
        || host
            .parse::<Ipv6Addr>()
            .is_ok_and(|ip| ip == Ipv6Addr::LOCALHOST)
}

/// The rules, built once at start from `--public-url` and `--allow-host`.
#[derive(Clone, Debug, Default)]
pub struct ControlGuard {
    any_host: bool,
    /// Hosts allowed besides loopback, lower case, without port.
    hosts: Vec<String>,
    public_origin: Option<Origin>,
}

impl ControlGuard {
    pub fn new(public_url: Option<&str>, allowed_hosts: &[String]) -> Result<Self, String> {
        let mut guard = ControlGuard::default();
        if let Some(url) = public_url {
            let origin = parse_origin(url, true).ok_or_else(|| {
                format!("--public-url {url:?}: expected http(s)://host[:port][/path]")
            })?;
            guard.hosts.push(origin.host.clone());
            guard.public_origin = Some(origin);
        }
        for name in allowed_hosts {
            if name == "*" {
                guard.any_host = true;
                continue;
            }
            match parse_host_port(name) {
                Some(HostPort { host, port: None }) => guard.hosts.push(host),
                _ => {
                    return Err(format!(
                        "--allow-host {name:?}: expected a host name or address without a port \
                         (e.g. zipgate.internal or 10.0.0.5), or '*' for any"
                    ))
                }
            }
        }
        Ok(guard)
    }

    /// The answer refusing the request for its Host or Origin, if any.
    pub fn check<B>(&self, req: &Request<B>) -> Option<Response<Body>> {
        let host = match request_host(req) {
            Ok(host) => host,
            Err(what) => {
                return Some(h::json_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    format!("the request's Host {what}"),
                ))
            }
        };
        if let Some(host) = &host {
            let allowed =
                self.any_host || is_loopback(&host.host) || self.hosts.contains(&host.host);
            if !allowed {
                return Some(h::json_error(
                    StatusCode::FORBIDDEN,
                    "host_not_allowed",
                    format!(
                        "zipgate's own routes answer only requests for localhost, 127.0.0.0/8, \
                         [::1], the --public-url host or a host named with --allow-host, not {:?}; \
                         start zipgate with --allow-host {} to allow it",
                        host.host, host.host
                    ),
                ));
            }
        }
        self.check_origin(req.headers(), host.as_ref())
    }

    fn check_origin(&self, headers: &HeaderMap, host: Option<&HostPort>) -> Option<Response<Body>> {
        let value = headers.get(header::ORIGIN)?;
        let origin = value.to_str().ok().and_then(|v| parse_origin(v, false));
        let own = origin.as_ref().is_some_and(|origin| {
            let same_host = host.is_some_and(|host| {
                default_port(&origin.scheme).is_some()
                    && host.host == origin.host
                    && host.port.or_else(|| default_port(&origin.scheme)) == Some(origin.port)
            });
            same_host || self.public_origin.as_ref() == Some(origin)
        });
        if own {
            return None;
        }
        Some(h::json_error(
            StatusCode::FORBIDDEN,
            "origin_not_allowed",
            format!(
                "requests from another origin ({:?}) may not use zipgate's own routes",
                String::from_utf8_lossy(value.as_bytes())
            ),
        ))
    }
}

/// The Host the request names (the request target's authority first, as
/// HTTP/1.1 says), `None` when it names none; two Host headers, or one
/// that is not `host[:port]`, are refused (`Err` says why).
fn request_host<B>(req: &Request<B>) -> Result<Option<HostPort>, &'static str> {
    const NOT_HOST_PORT: &str = "is not host[:port]";
    let mut values = req.headers().get_all(header::HOST).iter();
    let header = values.next();
    if values.next().is_some() {
        return Err("header is given more than once");
    }
    let text = match (req.uri().authority(), header) {
        (Some(authority), _) => authority.as_str(),
        (None, Some(value)) => value.to_str().map_err(|_| NOT_HOST_PORT)?,
        (None, None) => return Ok(None),
    };
    parse_host_port(text).map(Some).ok_or(NOT_HOST_PORT)
}

/// Routes that change state take a JSON body or none: a form, `text/plain`
/// or any other type a page may send cross-site without asking is refused
/// (the 415, if so).
pub fn json_only<B: http_body::Body>(req: &Request<B>) -> Option<Response<Body>> {
    let has_body = req.body().size_hint().exact() != Some(0);
    match h::media_type(req.headers()).as_deref() {
        Some("application/json") => None,
        None if !has_body => None,
        other => Some(h::json_error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!(
                "send the body as application/json (got {})",
                other.unwrap_or("no Content-Type")
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(headers: &[(&str, &str)]) -> Request<()> {
        let mut builder = Request::builder().uri("/_zipgate/reset");
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder.body(()).unwrap()
    }

    fn allowed(guard: &ControlGuard, headers: &[(&str, &str)]) -> bool {
        guard.check(&request(headers)).is_none()
    }

    #[test]
    fn loopback_hosts_pass_and_others_need_naming() {
        let guard = ControlGuard::new(None, &[]).unwrap();
        for host in [
            "localhost",
            "LOCALHOST:8080",
            "127.0.0.1",
            "127.9.8.7:1",
            "[::1]",
            "[::1]:8080",
        ] {
            assert!(allowed(&guard, &[("host", host)]), "{host}");
        }
        for host in [
            "evil.example",
            "evil.example:8080",
            "localhost.evil.example",
            "127.0.0.1.nip.io",
            "10.0.0.1",
            "[::2]",
            "0.0.0.0",
            "",
            "localhost:",
            "localhost:99999",
            "local host",
        ] {
            assert!(!allowed(&guard, &[("host", host)]), "{host:?}");
        }
        assert!(allowed(&guard, &[]), "no Host (HTTP/1.0)");

        let guard = ControlGuard::new(
            Some("https://Zip.Example.com/base"),
            &["zipgate.internal".into(), "10.0.0.5".into()],
        )
        .unwrap();
        for host in ["zip.example.com", "zipgate.internal:8080", "10.0.0.5:1"] {
            assert!(allowed(&guard, &[("host", host)]), "{host}");
        }
        assert!(!allowed(&guard, &[("host", "other.example")]));
        let any = ControlGuard::new(None, &["*".into()]).unwrap();
        assert!(allowed(&any, &[("host", "anything.example")]));
        assert!(ControlGuard::new(None, &["host:80".into()]).is_err());
        assert!(ControlGuard::new(None, &["http://host".into()]).is_err());
        assert!(ControlGuard::new(Some("zip.example.com"), &[]).is_err());
    }

    #[test]
    fn only_the_servers_own_origin_passes() {
        let guard = ControlGuard::new(Some("https://zip.example.com"), &[]).unwrap();
        let host = ("host", "127.0.0.1:8080");
        assert!(allowed(&guard, &[host]));
        assert!(allowed(
            &guard,
            &[host, ("origin", "http://127.0.0.1:8080")]
        ));
        assert!(allowed(
            &guard,
            &[("host", "localhost"), ("origin", "http://localhost:80")]
        ));
        assert!(allowed(
            &guard,
            &[host, ("origin", "https://zip.example.com")]
        ));
        for origin in [
            "http://evil.example",
            "http://127.0.0.1:8081",
            "http://localhost:8080",
            "null",
            "file://",
            "http://127.0.0.1:8080/path",
        ] {
            assert!(!allowed(&guard, &[host, ("origin", origin)]), "{origin}");
        }
    }
}
