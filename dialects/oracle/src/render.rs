//! How the Documents API writes its answers: JSON, or XML on request (the
//! docs list it but show no shape), the `types` setting's scalars, the
//! `X-ORACLE-DMS-ECID` header, and the error envelope with its challenge.

use http::{header, HeaderValue, Response, StatusCode};
use serde_json::{json, Value};
use zipgate_api::http::{full, weighted, Body};
use zipgate_api::rng::{SplitMix64, LOWER_ALNUM};
use zipgate_api::{Core, DialectRequest};

use crate::errors::OracleError;
use crate::settings::Types;
use crate::OracleDialect;

/// Whether `Accept` ranks `application/xml` above `application/json`, each
/// taking the quality of the most specific range that matches it (RFC 9110
/// §12.5.1: `application/json;q=0.5, application/xml` is XML; `*/*` and a
/// tie are JSON, the server's first type).
pub(crate) fn prefers_xml(accept: &str) -> bool {
    let quality = |media: &str| {
        let (kind, _) = media.split_once('/').unwrap_or((media, ""));
        let mut best: Option<(u8, u32)> = None;
        for (range, q) in weighted(accept) {
            let specificity = if range == media {
                2
            } else if range.strip_suffix("/*") == Some(kind) {
                1
            } else if range == "*/*" {
                0
            } else {
                continue;
            };
            if best.is_none_or(|(s, _)| specificity > s) {
                best = Some((specificity, q));
            }
        }
        best.map_or(0, |(_, q)| q)
    };
    let xml = quality("application/xml");
    xml > 0 && xml > quality("application/json")
}

impl OracleDialect {
    /// JSON, or XML when the client asks for `application/xml` (no documented
    /// shape: the JSON keys as elements under `<response>`).
    pub(crate) fn respond(
        &self,
        request: &DialectRequest,
        core: &dyn Core,
        status: StatusCode,
        body: &Value,
    ) -> Response<Body> {
        let wants_xml = request
            .headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(prefers_xml);
        let (text, content_type) = if wants_xml {
            let xml = zipgate_api::xml::from_json("response", body, false);
            (
                format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>{xml}"),
                "application/xml",
            )
        } else {
            (body.to_string(), "application/json")
        };
        let mut response = Response::new(full(text));
        *response.status_mut() = status;
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        add_ecid(headers, core);
        response
    }

    pub(crate) fn error(
        &self,
        request: &DialectRequest,
        core: &dyn Core,
        err: &OracleError,
    ) -> Response<Body> {
        let mut response = self.respond(request, core, err.status, &err.body());
        if err.status == 401 {
            let challenge = if self.settings.basic_auth {
                "Bearer realm=\"Oracle Content Management\", Basic realm=\"Oracle Content Management\""
            } else {
                "Bearer realm=\"Oracle Content Management\""
            };
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(challenge),
            );
        }
        response
    }

    /// A scalar as the chosen example writes it: a string, or native.
    pub(crate) fn scalar(&self, value: Value) -> Value {
        match (self.settings.types, value) {
            (Types::Captured, Value::Bool(b)) => json!(b.to_string()),
            (Types::Captured, Value::Number(n)) => json!(n.to_string()),
            (_, other) => other,
        }
    }
}

/// `X-ORACLE-DMS-ECID`, the execution context id Oracle's front ends add.
pub(crate) fn add_ecid(headers: &mut http::HeaderMap, core: &dyn Core) {
    let ecid = SplitMix64::new(core.random_u64()).string(LOWER_ALNUM, 32);
    if let Ok(value) = HeaderValue::from_str(&ecid) {
        headers.insert("x-oracle-dms-ecid", value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_ranks_json_and_xml_by_quality() {
        for (accept, xml) in [
            ("application/xml", true),
            ("application/json", false),
            ("application/xml, application/json", false),
            ("application/json;q=0.5, application/xml", true),
            ("application/xml;q=0.9, application/json;q=0.91", false),
            ("application/*;q=0.2, application/xml;q=0.3", true),
            ("*/*", false),
            ("application/xml;q=0", false),
            ("text/html, application/xml;q=0.9, */*;q=0.8", true),
        ] {
            assert_eq!(prefers_xml(accept), xml, "{accept}");
        }
    }
}
