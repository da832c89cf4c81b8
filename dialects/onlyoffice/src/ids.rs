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

/// `Guid.NewGuid().ToString()`: lower-case, hyphenated, version 4, from
/// the cryptographic generator (it names the operation to poll and cancel).
pub fn operation_id(core: &dyn Core) -> String {
    secret_guid(core)
}

/// The archive URL's `filename`: the archive's name, encoded. Both servers
/// write `Uri.EscapeDataString(InstanceCrypto.Encrypt(fileName))`, and
/// `InstanceCrypto` is Rijndael with the machine key and a zero IV, so the
/// same name always gives the same URL (`FileDownloadOperation.cs`). zipgate
/// writes base64 of a marked name: neither is a secret, since the handler
/// serves only the signed-in user's own archive of that name.
pub fn archive_token(name: &str) -> String {
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("zipgate:{name}"));
    percent_encode_rfc5987(&encoded)
}

/// The archive name inside a (query-decoded) token.
pub fn name_from_token(token: &str) -> Option<String> {
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
        for name in ["portal-download-2026-11-27.zip", "Überblick & Co + 1.zip"] {
            let token = archive_token(name);
            assert!(!token.contains(['=', '+', '/']), "{token}");
            let decoded = zipgate_api::dialect::query_pairs(&format!("filename={token}"));
            assert_eq!(name_from_token(&decoded[0].1).as_deref(), Some(name));
        }
        assert!(name_from_token("not base64!").is_none());
    }
}
