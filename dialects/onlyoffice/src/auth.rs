//! Who is calling, the way each flavour's server decides it (see the two
//! functions below). It runs before the body is parsed: the one body
//! parameter it reads, Workspace's form field, is found by a bounded scan
//! (`request::form_field`); a JSON or XML body is no form (`Request.Form` is
//! empty for them), so a token in one is not looked at.

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

/// The caller, as the flavour's server finds it; `body` is the raw request
/// body (empty where there is none), read only for Workspace's form field.
pub fn user(
    request: &DialectRequest,
    core: &dyn Core,
    body: &[u8],
    docspace: bool,
) -> Option<Arc<UserInfo>> {
    if docspace {
        docspace_user(request, core)
    } else {
        workspace_user(request, core, body)
    }
}

/// Community Server tries the `Authorization` header first (`Global.asax.cs`
/// `Authenticate` → `AuthorizationHelper.ProcessBasicAuthorization`: Basic,
/// else Bearer, else the raw header as a token), then the `asc_auth_key`
/// cookie, then the API authorizers (`ASCCookieAuthorization`: the query
/// parameter or form field; `CookiesManager.GetRequestVar`). A failed one
/// does not stop the next, so a stale cookie never hides a valid header.
fn workspace_user(request: &DialectRequest, core: &dyn Core, body: &[u8]) -> Option<Arc<UserInfo>> {
    workspace_session(request, core)
        .or_else(|| token(core, request.query(COOKIE)))
        .or_else(|| token(core, request::form_field(request, body, COOKIE)))
}

fn token(core: &dyn Core, key: Option<String>) -> Option<Arc<UserInfo>> {
    key.filter(|k| !k.is_empty())
        .and_then(|k| core.authenticate(&k))
}

/// What `Global.asax.cs` `Authenticate` alone accepts (the header, then the
/// cookie): all that Workspace's `filehandler.ashx` knows, since the query
/// and form key are read only by the API's authorizers.
fn workspace_session(request: &DialectRequest, core: &dyn Core) -> Option<Arc<UserInfo>> {
    let from_header = match basic(&request.headers) {
        Basic::Pair { login, password } => core.log_in(&login, &password).map(|s| s.user),
        Basic::Invalid => None,
        Basic::Absent => bearer_or_raw(request).and_then(|t| core.authenticate(t)),
    };
    from_header.or_else(|| token(core, cookie(request)))
}

/// The caller of the archive handler (`filehandler.ashx`).
pub fn handler_user(
    request: &DialectRequest,
    core: &dyn Core,
    docspace: bool,
) -> Option<Arc<UserInfo>> {
    if docspace {
        docspace_user(request, core)
    } else {
        workspace_session(request, core)
    }
}

/// DocSpace picks one scheme by the `Authorization` header alone
/// (`BaseStartup.cs`): none → the cookie; `Basic ` → Basic; `Bearer ` with
/// a JWT or an `sk-` key → that token; anything else → the cookie handler,
/// which reads the `asc_auth_key` cookie *before* the header
/// (`CookieAuthHandler.cs`), so there a stale cookie wins and fails. No
/// query parameter or form field.
fn docspace_user(request: &DialectRequest, core: &dyn Core) -> Option<Arc<UserInfo>> {
    let header = request
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if header.is_some_and(|h| h.starts_with("Basic ")) {
        return match basic(&request.headers) {
            Basic::Pair { login, password } => core.log_in(&login, &password).map(|s| s.user),
            _ => None,
        };
    }
    if let Some(token) = header.and_then(|h| h.strip_prefix("Bearer ")) {
        if looks_like_jwt(token) || token.starts_with("sk-") {
            return core.authenticate(token);
        }
    }
    let key = cookie(request).or_else(|| Some(bearer_or_raw(request)?.to_owned()))?;
    core.authenticate(&key)
}

/// What `JwtSecurityTokenHandler.CanReadToken` accepts: three base64url
/// parts (a signed token) or five (an encrypted one), joined by dots.
fn looks_like_jwt(token: &str) -> bool {
    let parts: Vec<&str> = token.split('.').collect();
    matches!(parts.len(), 3 | 5)
        && parts[..2].iter().all(|p| !p.is_empty())
        && parts.iter().all(|p| {
            p.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// The `Authorization` header's token: after `Bearer ` (cut at a `,`), or
/// the whole header.
fn bearer_or_raw(request: &DialectRequest) -> Option<&str> {
    let authorization = request
        .headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .trim();
    Some(
        authorization
            .strip_prefix("Bearer ")
            .map(|rest| rest.split(',').next().unwrap_or("").trim())
            .unwrap_or(authorization),
    )
}
