//! Box's id schemes: numeric strings for files and folders (pinned in the
//! fixture as `ids.box`, else derived from the neutral id), opaque
//! base64-like zip download ids, request ids, and conflict renaming.

use zipgate_api::ids::derived_number;
use zipgate_api::plan::{ConflictPolicy, Member};
use zipgate_api::rng::{secret_draw, SplitMix64, LOWER_ALNUM};
use zipgate_api::{Core, NodeKind};

pub const DIALECT: &str = "box";

/// Box ids are numeric strings: pinned in the fixture, else 12 derived digits.
pub fn derive(id: &zipgate_api::NodeId) -> String {
    derived_number("box", id, 12)
}

const BASE64URL: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Shaped like Box's: `29l00nfxDyHOt7RphI9zT_w==nDnZEDjY2S8iEWWCHEEiptFxwoWojjlibZjJ6geuE5xnXENDTPxzgbks_yY=`.
/// The `download_url` carries no credentials, so this id is the capability:
/// drawn from the cryptographic generator (450 bits).
pub fn zip_download_id(core: &dyn Core) -> String {
    let mut id = String::with_capacity(2 + 21 + 2 + 54 + 1);
    let mut draw = secret_draw(core);
    draw.append(&mut id, b"0123456789", 2);
    draw.append(&mut id, BASE64URL, 21);
    id.push_str("==");
    draw.append(&mut id, BASE64URL, 54);
    id.push('=');
    id
}

/// Like `BOX-REQUEST-ID: 0e4830fa3a27620edff9b15bd31497ef7`: `0` and 32
/// hex digits, the shape Box's gateway has sent since about 2020.
pub fn request_id(core: &dyn Core) -> String {
    let mut rng = SplitMix64::new(core.random_u64());
    let mut id = String::with_capacity(33);
    id.push('0');
    rng.append(&mut id, b"0123456789abcdef", 32);
    id
}

/// The `request_id` of an error body, like `s5h46dh2e1hyml6m`: Box's API
/// layer has its own id, distinct from the gateway's header.
pub fn error_request_id(core: &dyn Core) -> String {
    SplitMix64::new(core.random_u64()).string(LOWER_ALNUM, 16)
}

/// Box renames every member of a conflict: files to six random characters
/// plus the extension (`3aa6a7.pdf`), folders to six characters, `_` and the
/// name (`3d366a_employees`). Seeded, so a run with `--seed` is reproducible.
pub struct BoxRenamer(pub SplitMix64);

impl ConflictPolicy for BoxRenamer {
    fn resolve(&mut self, group: &[Member<'_>], taken: &dyn Fn(&str) -> bool) -> Vec<String> {
        let mut out: Vec<String> = Vec::with_capacity(group.len());
        for member in group {
            loop {
                let random = self.0.string(LOWER_ALNUM, 6);
                let name = match (member.kind, member.name.rsplit_once('.')) {
                    (NodeKind::Folder, _) => format!("{random}_{}", member.name),
                    (NodeKind::File, Some((stem, ext))) if !stem.is_empty() => {
                        format!("{random}.{ext}")
                    }
                    (NodeKind::File, _) => random,
                };
                if !taken(&name) && !out.contains(&name) {
                    out.push(name);
                    break;
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renames_follow_boxs_examples() {
        let mut renamer = BoxRenamer(SplitMix64::new(1));
        let files = [
            Member {
                name: "Report.pdf",
                kind: NodeKind::File,
            },
            Member {
                name: "Report.pdf",
                kind: NodeKind::File,
            },
        ];
        let names = renamer.resolve(&files, &|_| false);
        assert_eq!(names.len(), 2);
        for name in &names {
            let (stem, ext) = name.split_once('.').unwrap();
            assert_eq!(ext, "pdf");
            assert_eq!(stem.len(), 6);
            assert!(stem.bytes().all(|b| LOWER_ALNUM.contains(&b)));
        }
        assert_ne!(names[0], names[1]);
        let folders = [
            Member {
                name: "employees",
                kind: NodeKind::Folder,
            },
            Member {
                name: "employees",
                kind: NodeKind::Folder,
            },
        ];
        for name in renamer.resolve(&folders, &|_| false) {
            assert_eq!(&name[6..], "_employees");
        }
        let plain = [
            Member {
                name: "Makefile",
                kind: NodeKind::File,
            },
            Member {
                name: ".env",
                kind: NodeKind::File,
            },
        ];
        for name in renamer.resolve(&plain, &|_| false) {
            assert_eq!(name.len(), 6);
        }
    }
}
