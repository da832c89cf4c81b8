//! JSON values as XML the way .NET's Newtonsoft `XmlNodeConverter` writes
//! them: no declaration, no whitespace, arrays as repeated elements (empty
//! ones vanish), nulls, empty strings and empty objects as `<x />`.

use serde_json::Value;

/// `value` as the element `root`; `capitalised_booleans` writes `True`/`False`.
pub fn from_json(root: &str, value: &Value, capitalised_booleans: bool) -> String {
    let mut out = String::new();
    write_element(root, value, capitalised_booleans, &mut out);
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

/// `text` with `&`, `<` and `>` escaped: element content as .NET's writers
/// escape it (quotes stay as they are).
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    escape_xml(text, &mut out);
    out
}

/// [`escape`], appended to `out`.
pub fn escape_xml(text: &str, out: &mut String) {
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
    fn arrays_repeat_and_nulls_close() {
        let value = json!({"a": [1, 2], "b": null, "c": [], "d": {}, "e": "x&y"});
        assert_eq!(
            from_json("r", &value, false),
            "<r><a>1</a><a>2</a><b /><d /><e>x&amp;y</e></r>"
        );
    }
}
