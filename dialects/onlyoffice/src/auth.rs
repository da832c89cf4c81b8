//! Who is calling, the way Community Server's authorizers decide it, in
//! order: the `asc_auth_key` query parameter, form field or cookie (falling
//! back to the raw `Authorization` header as the token), then `Basic`, then
//! `Bearer`.

use base64::Engine as _;
use http::header;
use std::sync::Arc;
use zipgate_api::{Core, DialectRequest, UserInfo};

use crate::request::Params;

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

pub fn user(
    request: &DialectRequest,
    core: &dyn Core,
    form: Option<&Params>,
) -> Option<Arc<UserInfo>> {
    let key = request
        .query(COOKIE)
        .or_else(|| form.and_then(|f| f.get(COOKIE)).map(str::to_owned))
        .or_else(|| cookie(request))
        .filter(|k| !k.is_empty());
    if let Some(token) = key {
        return core.authenticate(&token);
    }
    let authorization = request
        .headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .trim();
    if let Some(encoded) = authorization.strip_prefix("Basic ") {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .ok()?;
        let text = String::from_utf8(decoded).ok()?;
        let (login, password) = text.split_once(':')?;
        return core.log_in(login, password).map(|(user, _)| user);
    }
    let token = authorization
        .strip_prefix("Bearer ")
        .map(|rest| rest.split(',').next().unwrap_or("").trim())
        .unwrap_or(authorization);
    core.authenticate(token)
}
