//! Helpers for dialect id schemes. The index from a dialect's ids back to
//! neutral ones lives in the core (`Core::resolve`), rebuilt per tree.

use crate::rng::fnv1a;
use crate::NodeId;

/// A decimal id of `digits` digits (no leading zero) derived from `salt` and the neutral id.
pub fn derived_number(salt: &str, id: &NodeId, digits: u32) -> String {
    let low = 10u64.pow(digits - 1);
    let span = 9 * low;
    (low + fnv1a(format!("{salt}:{}", id.as_str()).as_bytes()) % span).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_numbers_have_the_asked_width() {
        for digits in [7, 12] {
            let id = derived_number("x", &NodeId::from("file-notes"), digits);
            assert_eq!(id.len() as u32, digits);
            assert!(id.bytes().all(|b| b.is_ascii_digit()));
        }
    }
}
