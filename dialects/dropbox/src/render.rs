//! JSON as Dropbox's API writes it: Python's `json.dumps` defaults (`", "`
//! and `": "` separators) and, for the `Dropbox-API-Result` header, every
//! character outside printable ASCII as `\uXXXX` (surrogate pairs above the
//! BMP), which is what makes the header value ASCII ("HTTP header safe").

use serde_json::Value;
use zipgate_api::json::JsonStyle;

/// `value` with Python's separators, ASCII only.
pub fn python_json(value: &Value) -> String {
    const STYLE: JsonStyle = JsonStyle {
        item_separator: ", ",
        key_separator: ": ",
        escape,
    };
    STYLE.write(value)
}

/// `json.dumps`' `ensure_ascii` escaping: everything outside space to `~`.
fn escape(c: char, out: &mut String) {
    match c {
        '"' => out.push_str("\\\""),
        '\\' => out.push_str("\\\\"),
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        '\u{8}' => out.push_str("\\b"),
        '\u{c}' => out.push_str("\\f"),
        ' '..='~' => out.push(c),
        c => {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{unit:04x}"));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn like_pythons_json_dumps() {
        let value = json!({"a": [1, "x\u{7f}é😀"], "b": {"c": null, "d": "\"\n"}});
        assert_eq!(
            python_json(&value),
            r#"{"a": [1, "x\u007f\u00e9\ud83d\ude00"], "b": {"c": null, "d": "\"\n"}}"#
        );
    }
}
