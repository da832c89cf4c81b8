//! Who is calling, the way Community Server's authorizers decide it, in
//! order: the `asc_auth_key` query parameter, form field or cookie (falling
//! back to the raw `Authorization` header as the token), then `Basic`, then
//! `Bearer`. It runs before the body is parsed: the one body parameter it
//! reads, the form field, is found by a bounded scan (`request::form_field`);
//! a JSON or XML body is no form (`Request.Form` is empty for them), so a
//! token in one is not looked at.

use http::header;
use std::sync::Arc;
use zipgate_api::http::{basic, Basic};
use zipgate_api::{Core, DialectRequest, UserInfo};

use crate::request;

const COOKIE: &str = "asc_auth_key";

fn cookie(request: &DialectRequest) -> Option<String> {
    request
        .headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.to_owned())
}

/// The caller, from the query string, a form body's `asc_auth_key`, the
/// cookie or `Authorization`; `body` is the raw request body (empty where
/// there is none).
pub fn user(request: &DialectRequest, core: &dyn Core, body: &[u8]) -> Option<Arc<UserInfo>> {
    let key = request
        .query(COOKIE)
        .or_else(|| request::form_field(request, body, COOKIE))
        .or_else(|| cookie(request))
        .filter(|k| !k.is_empty());
    if let Some(token) = key {
        return core.authenticate(&token);
    }
    match basic(&request.headers) {
        Basic::Pair { login, password } => {
            return core
                .log_in(&login, &password)
                .map(|signed_in| signed_in.user)
        }
        Basic::Invalid => return None,
        Basic::Absent => {}
    }
    let authorization = request
        .headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .trim();
    let token = authorization
        .strip_prefix("Bearer ")
        .map(|rest| rest.split(',').next().unwrap_or("").trim())
        .unwrap_or(authorization);
    core.authenticate(token)
}
