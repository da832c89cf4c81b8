//! `--set dropbox.KEY=VALUE` settings, each with a documented default.

use zipgate_api::settings::{Setting, MAX_COUNT, MAX_SIZE_BYTES};
use zipgate_api::{Compression, Settings};

/// Which request `Content-Type` values are accepted (the body must be empty either way).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ContentTypes {
    /// None, empty, `application/octet-stream` or `text/plain` (the CORS
    /// form `text/plain; charset=dropbox-cors-hack` included); anything
    /// else is Dropbox's `Bad HTTP "Content-Type" header` 400.
    Strict,
    /// Any value.
    Any,
}

#[derive(Clone, Debug)]
pub struct DropboxSettings {
    /// Largest folder, in bytes ("less than 20 GB": 20 GiB - 1).
    pub max_bytes: u64,
    /// Largest single file ("less than 4 GB": 4 GiB - 1).
    pub max_file_bytes: u64,
    /// Most entries, files and folders, the top folder included ("fewer than 10,000").
    pub max_entries: u64,
    pub content_types: ContentTypes,
    /// `None` uses the server's `--compression`.
    pub compression: Option<Compression>,
}

impl Default for DropboxSettings {
    fn default() -> Self {
        DropboxSettings {
            max_bytes: (20 << 30) - 1,
            max_file_bytes: (4 << 30) - 1,
            max_entries: 9_999,
            content_types: ContentTypes::Strict,
            compression: None,
        }
    }
}

/// Every `dropbox.*` key, for the refusal of an unknown one.
const KNOWN: &[&str] = &[
    "max_bytes",
    "max_file_bytes",
    "max_entries",
    "content_types",
    "compression",
];

impl DropboxSettings {
    pub fn parse(settings: &Settings) -> Result<Self, String> {
        let mut out = DropboxSettings::default();
        for setting in Setting::each("dropbox", settings) {
            match setting.key {
                "max_bytes" => out.max_bytes = setting.number(MAX_SIZE_BYTES)?,
                "max_file_bytes" => out.max_file_bytes = setting.number(MAX_SIZE_BYTES)?,
                "max_entries" => out.max_entries = setting.number(MAX_COUNT)?,
                "content_types" => {
                    out.content_types = setting
                        .choice(&[("strict", ContentTypes::Strict), ("any", ContentTypes::Any)])?
                }
                "compression" => out.compression = Some(setting.compression()?),
                _ => return Err(setting.unknown(KNOWN)),
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_parse_and_refuse_unknown_keys() {
        let mut given = Settings::new();
        given.insert("max_entries".into(), "3".into());
        given.insert("content_types".into(), "any".into());
        let parsed = DropboxSettings::parse(&given).unwrap();
        assert_eq!(parsed.max_entries, 3);
        assert_eq!(parsed.content_types, ContentTypes::Any);
        given.insert("nope".into(), "1".into());
        let err = DropboxSettings::parse(&given).unwrap_err();
        assert!(err.starts_with("dropbox.nope: unknown setting"), "{err}");
    }
}
