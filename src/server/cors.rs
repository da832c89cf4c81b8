//! `--cors ORIGIN[,ORIGIN]`: vendor routes answer browsers on those origins
//! as the vendor's server does (each dialect's [`Cors`] says how: `*` or the
//! origin echoed, the headers a preflight may ask for, what is exposed).
//! Off by default, and never for the control plane (`/_zipgate/`), which
//! refuses foreign origins outright (`guard.rs`).

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Response, StatusCode};
use zipgate_api::Cors;

use super::http::{empty, Body};

/// Whether `origin` (as the browser sent it) is one `--cors` allows:
/// listed (scheme and host in any case, port exact) or `*`.
pub fn allowed(origins: &[String], origin: &str) -> bool {
    origins
        .iter()
        .any(|o| o == "*" || o.trim_end_matches('/').eq_ignore_ascii_case(origin))
}

/// The answer to a preflight from an allowed origin: the vendor's status,
/// the methods the route takes (or the one asked for, on a path no route
/// has), the headers it allows.
pub fn preflight(
    rules: &Cors,
    origin: &str,
    request: &HeaderMap,
    methods: &[Method],
) -> Response<Body> {
    let mut response = Response::new(empty());
    *response.status_mut() =
        StatusCode::from_u16(rules.preflight_status).unwrap_or(StatusCode::NO_CONTENT);
    let headers = response.headers_mut();
    allow_origin(rules, origin, headers);
    let asked = request
        .get(header::ACCESS_CONTROL_REQUEST_METHOD)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let methods = if methods.is_empty() {
        asked.to_owned()
    } else {
        methods
            .iter()
            .map(Method::as_str)
            .collect::<Vec<_>>()
            .join(", ")
    };
    set(headers, header::ACCESS_CONTROL_ALLOW_METHODS, &methods);
    let allow_headers = match rules.allow_headers {
        Some(list) => list.join(", "),
        // Echoed, as ASP.NET Core's AllowAnyHeader does.
        None => request
            .get(header::ACCESS_CONTROL_REQUEST_HEADERS)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned(),
    };
    if !allow_headers.is_empty() {
        set(
            headers,
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            &allow_headers,
        );
    }
    if let Some(age) = rules.max_age {
        set(headers, header::ACCESS_CONTROL_MAX_AGE, &age.to_string());
    }
    response
}

/// The headers an actual response from an allowed origin carries.
pub fn decorate(rules: &Cors, origin: &str, headers: &mut HeaderMap) {
    allow_origin(rules, origin, headers);
    if !rules.expose_headers.is_empty() {
        set(
            headers,
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            &rules.expose_headers.join(", "),
        );
    }
}

fn allow_origin(rules: &Cors, origin: &str, headers: &mut HeaderMap) {
    if rules.star {
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_ORIGIN,
            HeaderValue::from_static("*"),
        );
    } else {
        set(headers, header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        if rules.credentials {
            headers.insert(
                header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
        }
    }
    // The answer depends on the Origin either way (an origin not allowed
    // gets none of this), so caches must keep them apart.
    headers.append(header::VARY, HeaderValue::from_static("Origin"));
}

fn set(headers: &mut HeaderMap, name: HeaderName, value: &str) {
    if let Ok(value) = HeaderValue::from_str(value) {
        headers.insert(name, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_match_exactly_or_by_star() {
        let list = vec!["https://app.example.com".to_owned()];
        assert!(allowed(&list, "https://app.example.com"));
        assert!(allowed(&list, "HTTPS://APP.example.com"));
        assert!(!allowed(&list, "https://app.example.com:8443"));
        assert!(!allowed(&list, "https://evil.example.com"));
        assert!(!allowed(&list, "null"));
        assert!(allowed(&["*".to_owned()], "null"));
    }

    #[test]
    fn a_star_vendor_never_sends_credentials() {
        let mut headers = HeaderMap::new();
        let rules = Cors {
            star: true,
            credentials: true,
            ..Cors::default()
        };
        decorate(&rules, "https://a.example", &mut headers);
        assert_eq!(headers["access-control-allow-origin"], "*");
        assert!(!headers.contains_key("access-control-allow-credentials"));
    }
}
