//! How the Documents API writes its answers: JSON, or XML on request (the
//! docs list it but show no shape), the `types` setting's scalars, the
//! `X-ORACLE-DMS-ECID` header, and the error envelope with its challenge.

use http::{header, HeaderValue, Response, StatusCode};
use serde_json::{json, Value};
use zipgate_api::http::{full, Body};
use zipgate_api::rng::{SplitMix64, LOWER_ALNUM};
use zipgate_api::{Core, DialectRequest};

use crate::errors::OracleError;
use crate::settings::Types;
use crate::OracleDialect;

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
            .is_some_and(|accept| {
                accept.contains("application/xml") && !accept.contains("application/json")
            });
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
