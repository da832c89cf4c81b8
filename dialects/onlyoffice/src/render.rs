//! The vendor's serializers: Community Server's Newtonsoft JSON with its
//! `JsonStringConverter` escaping, and the XML that Newtonsoft's
//! `XmlNodeConverter` makes of that JSON.

use serde_json::Value;

/// Compact JSON as Community Server writes it: `/` as `\/`, control
/// characters as lower-case `\u00xx`, other non-ASCII raw.
pub fn vendor_json(value: &Value) -> String {
    let mut out = String::new();
    write_json(value, &mut out);
    out
}

fn write_json(value: &Value, out: &mut String) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&n.to_string()),
        Value::String(s) => write_string(s, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_json(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            out.push('{');
            for (i, (key, item)) in map.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_string(key, out);
                out.push(':');
                write_json(item, out);
            }
            out.push('}');
        }
    }
}

fn write_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '/' => out.push_str("\\/"),
            c if (c as u32) < 0x20 || c == '\u{fffe}' || c == '\u{ffff}' => {
                out.push_str(&format!("\\u{:04x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// `{"result": value}` as XML: no declaration, no whitespace, arrays as
/// repeated elements (empty ones vanish), nulls and empty objects as `<x />`.
/// `capitalised_booleans` writes `True`/`False` as the documentation page does.
pub fn vendor_xml(value: &Value, capitalised_booleans: bool) -> String {
    let mut out = String::new();
    write_element("result", value, capitalised_booleans, &mut out);
    out
}

fn write_element(name: &str, value: &Value, caps: bool, out: &mut String) {
    match value {
        Value::Array(items) => {
            for item in items {
                write_element(name, item, caps, out);
            }
        }
        Value::Null => {
            out.push('<');
            out.push_str(name);
            out.push_str(" />");
        }
        Value::String(text) if text.is_empty() => {
            out.push('<');
            out.push_str(name);
            out.push_str(" />");
        }
        Value::Object(map) if map.is_empty() => {
            out.push('<');
            out.push_str(name);
            out.push_str(" />");
        }
        Value::Object(map) => {
            out.push('<');
            out.push_str(name);
            out.push('>');
            for (key, item) in map {
                write_element(key, item, caps, out);
            }
            out.push_str("</");
            out.push_str(name);
            out.push('>');
        }
        scalar => {
            let text = match scalar {
                Value::Bool(true) if caps => "True".to_owned(),
                Value::Bool(false) if caps => "False".to_owned(),
                Value::Bool(b) => b.to_string(),
                Value::Number(n) => n.to_string(),
                Value::String(s) => s.clone(),
                _ => String::new(),
            };
            out.push('<');
            out.push_str(name);
            out.push('>');
            escape_xml(&text, out);
            out.push_str("</");
            out.push_str(name);
            out.push('>');
        }
    }
}

fn escape_xml(text: &str, out: &mut String) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_escapes_like_the_vendor() {
        let value = json!({"url": "http://h/a?b=1&c=2", "s": "line\nÜ\"\\", "n": null, "b": false});
        assert_eq!(
            vendor_json(&value),
            r#"{"url":"http:\/\/h\/a?b=1&c=2","s":"line\u000aÜ\"\\","n":null,"b":false}"#
        );
    }

    #[test]
    fn xml_follows_newtonsofts_rules() {
        let value = json!({"count": 1, "status": 0, "response": [
            {"id": "x", "error": null, "finished": false, "url": "a&b", "files": null}
        ], "empty": [], "data": {}});
        assert_eq!(
            vendor_xml(&value, false),
            "<result><count>1</count><status>0</status><response><id>x</id><error /><finished>false</finished>\
             <url>a&amp;b</url><files /></response><data /></result>"
        );
        assert!(vendor_xml(&json!({"finished": true}), true).contains("<finished>True</finished>"));
    }
}
