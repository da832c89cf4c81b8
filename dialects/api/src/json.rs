//! JSON written the way a vendor's serializer writes it: its separators and
//! its string escaping differ (Newtonsoft compact with `\/`, Python's
//! `json.dumps` with `", "` and ASCII-only output…), the value walk does not.

use serde_json::Value;

/// A vendor's JSON style.
pub struct JsonStyle {
    /// Between items and between members: `,` or `, `.
    pub item_separator: &'static str,
    /// Between a key and its value: `:` or `: `.
    pub key_separator: &'static str,
    /// Writes one character of a string's content, escaped as the vendor does.
    pub escape: fn(char, &mut String),
}

impl JsonStyle {
    pub fn write(&self, value: &Value) -> String {
        let mut out = String::new();
        self.value(value, &mut out);
        out
    }

    fn value(&self, value: &Value, out: &mut String) {
        match value {
            Value::Null => out.push_str("null"),
            Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Value::Number(n) => out.push_str(&n.to_string()),
            Value::String(s) => self.string(s, out),
            Value::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push_str(self.item_separator);
                    }
                    self.value(item, out);
                }
                out.push(']');
            }
            Value::Object(map) => {
                out.push('{');
                for (i, (key, item)) in map.iter().enumerate() {
                    if i > 0 {
                        out.push_str(self.item_separator);
                    }
                    self.string(key, out);
                    out.push_str(self.key_separator);
                    self.value(item, out);
                }
                out.push('}');
            }
        }
    }

    fn string(&self, s: &str, out: &mut String) {
        out.push('"');
        for c in s.chars() {
            (self.escape)(c, out);
        }
        out.push('"');
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn separators_and_escapes_are_the_styles() {
        fn plain(c: char, out: &mut String) {
            match c {
                '"' => out.push_str("\\\""),
                c => out.push(c),
            }
        }
        let style = JsonStyle {
            item_separator: ", ",
            key_separator: ": ",
            escape: plain,
        };
        assert_eq!(
            style.write(&json!({"a": [1, null, true], "b\"": {}})),
            r#"{"a": [1, null, true], "b\"": {}}"#
        );
    }
}
