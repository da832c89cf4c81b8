//! ONLYOFFICE's id schemes: integer ids for files and folders (pinned as
//! `ids.onlyoffice`, else seven derived digits), lower-case GUIDs for
//! operations, and the opaque `filename` token of the archive URL.

use base64::Engine as _;
use zipgate_api::http::percent_encode_rfc5987;
use zipgate_api::ids::derived_number;
use zipgate_api::rng::secret_guid;
use zipgate_api::Core;

pub const DIALECT: &str = "onlyoffice";

pub fn derive(id: &zipgate_api::NodeId) -> String {
    derived_number("onlyoffice", id, 7)
}

/// `Guid.NewGuid().ToString()`: lower-case, hyphenated, version 4. The
/// archive URL's key is derived from it, so it is a secret.
pub fn operation_id(core: &dyn Core) -> String {
    secret_guid(core)
}

/// Base64 like the vendor's `InstanceCrypto.Encrypt`, then `Uri.EscapeDataString`.
pub fn archive_token(job_id: &str) -> String {
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("zipgate:{job_id}"));
    percent_encode_rfc5987(&encoded)
}

/// The job id inside a (query-decoded) token.
pub fn job_from_token(token: &str) -> Option<String> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(token.trim())
        .ok()?;
    String::from_utf8(bytes)
        .ok()?
        .strip_prefix("zipgate:")
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_through_the_query_string() {
        let token = archive_token("6f1c0a52-1b7e-4f4f-9d0e-2c8f1a3b5d7e");
        assert!(token.contains("%3D") || !token.contains('='));
        let decoded = zipgate_api::dialect::query_pairs(&format!("filename={token}"));
        assert_eq!(
            job_from_token(&decoded[0].1).as_deref(),
            Some("6f1c0a52-1b7e-4f4f-9d0e-2c8f1a3b5d7e")
        );
        assert!(job_from_token("not base64!").is_none());
    }
}
