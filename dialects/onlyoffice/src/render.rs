//! The vendor's serializers: Community Server's Newtonsoft JSON with its
//! `JsonStringConverter` escaping, and the XML that Newtonsoft's
//! `XmlNodeConverter` makes of that JSON.

use serde_json::Value;
use zipgate_api::json::JsonStyle;

/// Compact JSON as Community Server writes it: `/` as `\/`, control
/// characters as lower-case `\u00xx`, other non-ASCII raw.
pub fn vendor_json(value: &Value) -> String {
    const STYLE: JsonStyle = JsonStyle {
        item_separator: ",",
        key_separator: ":",
        escape,
    };
    STYLE.write(value)
}

fn escape(c: char, out: &mut String) {
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

/// `{"result": value}` as XML, by Newtonsoft's rules (see `zipgate_api::xml`).
/// `capitalised_booleans` writes `True`/`False` as the documentation page does.
pub fn vendor_xml(value: &Value, capitalised_booleans: bool) -> String {
    zipgate_api::xml::from_json("result", value, capitalised_booleans)
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
