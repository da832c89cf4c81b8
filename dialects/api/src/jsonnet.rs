//! JSON as Json.NET's `JsonTextReader` reads it, for dialects whose vendor
//! parses request bodies with Newtonsoft.Json (ASP.NET servers). It accepts
//! more than RFC 8259, and those servers answer such bodies with a 200:
//! single-quoted strings, unquoted property names (letters, digits, `_`,
//! `$`), `//` and `/* */` comments, trailing commas, empty array slots
//! (`[1,,2]`, read as `undefined`), hexadecimal and octal integers (`0x1F`,
//! `012`), `NaN`, `Infinity`, `undefined`, raw control characters inside
//! strings, and a leading byte-order mark. Members keep their order and
//! their repeats (a converter that walks the reader, such as
//! `XmlNodeConverter`, sees every one).
//!
//! Errors carry Json.NET's message shape: `<what>. Path '<path>', line L,
//! position P.` Depth is capped (Json.NET 13's `MaxDepth` is 64), so no body
//! recurses without bound.

use std::fmt::Write as _;

/// A value as the reader produced it.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Null,
    /// `undefined`, or an empty array slot.
    Undefined,
    Bool(bool),
    /// An integer, written in decimal (hexadecimal and octal converted).
    Integer(String),
    /// Any other number as written (`1.5`, `1e3`), or `NaN` / `Infinity` /
    /// `-Infinity`.
    Float(String),
    String(String),
    Array(Vec<Value>),
    /// Members in order, repeats kept.
    Object(Vec<(String, Value)>),
}

impl Value {
    /// The text of a scalar as the value's string form (`true`, `12`, the
    /// string itself); `None` for null, undefined, arrays and objects.
    pub fn scalar_text(&self) -> Option<String> {
        match self {
            Value::Bool(b) => Some(if *b { "true" } else { "false" }.into()),
            Value::Integer(s) | Value::Float(s) | Value::String(s) => Some(s.clone()),
            _ => None,
        }
    }
}

/// A strict parser's value in the same shape, so one walk serves both.
impl From<serde_json::Value> for Value {
    fn from(value: serde_json::Value) -> Self {
        match value {
            serde_json::Value::Null => Value::Null,
            serde_json::Value::Bool(b) => Value::Bool(b),
            serde_json::Value::Number(n) if n.is_f64() => Value::Float(n.to_string()),
            serde_json::Value::Number(n) => Value::Integer(n.to_string()),
            serde_json::Value::String(s) => Value::String(s),
            serde_json::Value::Array(items) => {
                Value::Array(items.into_iter().map(Value::from).collect())
            }
            serde_json::Value::Object(map) => {
                Value::Object(map.into_iter().map(|(k, v)| (k, v.into())).collect())
            }
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JsonError {
    pub message: String,
    /// The reader's path where it failed (`FileIds[0]`; empty at the root).
    pub path: String,
    /// Objects and arrays open when it failed.
    pub open: usize,
}

impl std::fmt::Display for JsonError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// How the reader is configured.
#[derive(Clone, Copy, Debug)]
pub struct ReaderOptions {
    /// Nesting deeper than this is an error (Json.NET 13: 64).
    pub max_depth: usize,
    /// Text after the root value (other than whitespace and comments) is an
    /// error, as `JsonConvert.DeserializeObject` checks; a serializer reading
    /// from a stream (Web API's formatter) stops after the root instead.
    pub reject_additional_content: bool,
}

impl Default for ReaderOptions {
    fn default() -> Self {
        ReaderOptions {
            max_depth: 64,
            reject_additional_content: true,
        }
    }
}

/// Reads one root value. An input with nothing but whitespace and comments
/// gives `Ok(None)` (Json.NET reads no token).
pub fn parse(input: &[u8], options: ReaderOptions) -> Result<Option<Value>, JsonError> {
    let text = String::from_utf8_lossy(input);
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    let mut reader = Reader {
        chars: text.chars().collect(),
        at: 0,
        line: 1,
        line_start: 0,
        path: Vec::new(),
        open: 0,
        options,
    };
    reader.skip_blank()?;
    if reader.peek().is_none() {
        return Ok(None);
    }
    let value = reader.value(0)?;
    reader.skip_blank()?;
    if options.reject_additional_content && reader.peek().is_some() {
        return Err(reader.error(
            "Additional text encountered after finished reading JSON content: ".to_owned()
                + &reader.peek().map(String::from).unwrap_or_default()
                + ".",
        ));
    }
    Ok(Some(value))
}

enum Segment {
    Member(String),
    Index(usize),
}

struct Reader {
    chars: Vec<char>,
    at: usize,
    line: usize,
    line_start: usize,
    path: Vec<Segment>,
    /// Objects and arrays being read.
    open: usize,
    options: ReaderOptions,
}

fn identifier_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || c == '$'
}

impl Reader {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.at).copied()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.at += 1;
        if c == '\n' {
            self.line += 1;
            self.line_start = self.at;
        }
        Some(c)
    }

    /// Json.NET's `Path '…', line L, position P.` suffix.
    fn error(&self, what: String) -> JsonError {
        let mut path = String::new();
        for segment in &self.path {
            match segment {
                Segment::Member(name) => {
                    if !path.is_empty() {
                        path.push('.');
                    }
                    path.push_str(name);
                }
                Segment::Index(i) => {
                    let _ = write!(path, "[{i}]");
                }
            }
        }
        JsonError {
            message: format!(
                "{what} Path '{path}', line {}, position {}.",
                self.line,
                self.at - self.line_start
            ),
            path,
            open: self.open,
        }
    }

    fn unexpected_end(&self) -> JsonError {
        self.error("Unexpected end when reading JSON.".into())
    }

    /// Whitespace and comments.
    fn skip_blank(&mut self) -> Result<(), JsonError> {
        loop {
            match self.peek() {
                Some(c) if c.is_whitespace() => {
                    self.bump();
                }
                Some('/') => match self.chars.get(self.at + 1) {
                    Some('/') => {
                        while let Some(c) = self.peek() {
                            if c == '\n' || c == '\r' {
                                break;
                            }
                            self.bump();
                        }
                    }
                    Some('*') => {
                        self.bump();
                        self.bump();
                        loop {
                            match self.bump() {
                                None => {
                                    return Err(
                                        self.error("Unexpected end while parsing comment.".into())
                                    )
                                }
                                Some('*') if self.peek() == Some('/') => {
                                    self.bump();
                                    break;
                                }
                                Some(_) => {}
                            }
                        }
                    }
                    _ => {
                        return Err(self.error("Error parsing comment. Expected: *, got /.".into()))
                    }
                },
                _ => return Ok(()),
            }
        }
    }

    fn value(&mut self, depth: usize) -> Result<Value, JsonError> {
        let Some(c) = self.peek() else {
            return Err(self.unexpected_end());
        };
        match c {
            '{' | '[' if depth >= self.options.max_depth => Err(self.error(format!(
                "The reader's MaxDepth of {} has been exceeded.",
                self.options.max_depth
            ))),
            '{' | '[' => {
                self.open += 1;
                let value = if c == '{' {
                    self.object(depth + 1)
                } else {
                    self.array(depth + 1)
                }?;
                self.open -= 1;
                Ok(value)
            }
            '"' | '\'' => self.string().map(Value::String),
            '-' | '0'..='9' | '.' | 'N' | 'I' => self.number(),
            't' => self.literal("true", Value::Bool(true)),
            'f' => self.literal("false", Value::Bool(false)),
            'n' => self.literal("null", Value::Null),
            'u' => self.literal("undefined", Value::Undefined),
            other => Err(self.error(format!(
                "Unexpected character encountered while parsing value: {other}."
            ))),
        }
    }

    fn literal(&mut self, word: &str, value: Value) -> Result<Value, JsonError> {
        for expected in word.chars() {
            match self.peek() {
                Some(c) if c == expected => {
                    self.bump();
                }
                None => return Err(self.unexpected_end()),
                Some(_) => {
                    return Err(self.error(format!("Error parsing {word} value.")));
                }
            }
        }
        self.expect_delimiter()?;
        Ok(value)
    }

    /// After a scalar: whitespace, a comment, `,`, `]`, `}` or the end.
    fn expect_delimiter(&mut self) -> Result<(), JsonError> {
        match self.peek() {
            None | Some(',' | ']' | '}' | '/') => Ok(()),
            Some(c) if c.is_whitespace() => Ok(()),
            Some(c) => Err(self.error(format!(
                "Unexpected character encountered while parsing value: {c}."
            ))),
        }
    }

    fn number(&mut self) -> Result<Value, JsonError> {
        let start = self.at;
        while let Some(c) = self.peek() {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '+' | '.') {
                self.bump();
            } else {
                break;
            }
        }
        let text: String = self.chars[start..self.at].iter().collect();
        self.expect_delimiter()?;
        let invalid = || format!("Input string '{text}' is not a valid number.");
        match text.as_str() {
            "NaN" | "Infinity" | "-Infinity" => return Ok(Value::Float(text)),
            _ => {}
        }
        let (negative, digits) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text.as_str()),
        };
        let sign = if negative { "-" } else { "" };
        // Json.NET reads a leading 0 as a radix prefix: 0x1F hexadecimal, 012 octal.
        let radix_digits = if let Some(hex) = digits
            .strip_prefix("0x")
            .or_else(|| digits.strip_prefix("0X"))
        {
            Some((hex, 16))
        } else if digits.len() > 1
            && digits.starts_with('0')
            && digits.bytes().all(|b| b.is_ascii_digit())
        {
            Some((&digits[1..], 8))
        } else {
            None
        };
        if let Some((body, radix)) = radix_digits {
            return u128::from_str_radix(body, radix)
                .ok()
                .filter(|_| !body.is_empty() && !body.starts_with('+'))
                .map(|n| Value::Integer(format!("{sign}{n}")))
                .ok_or_else(|| self.error(invalid()));
        }
        if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
            // Decimal integers of any size (Json.NET reads past `long` as BigInteger).
            let trimmed = digits.trim_start_matches('0');
            let digits = if trimmed.is_empty() { "0" } else { trimmed };
            let sign = if digits == "0" { "" } else { sign };
            return Ok(Value::Integer(format!("{sign}{digits}")));
        }
        let is_float = digits
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-'))
            && digits.parse::<f64>().is_ok_and(f64::is_finite)
            && digits
                .bytes()
                .next()
                .is_some_and(|b| b.is_ascii_digit() || b == b'.');
        if is_float {
            Ok(Value::Float(text))
        } else {
            Err(self.error(invalid()))
        }
    }

    fn string(&mut self) -> Result<String, JsonError> {
        let quote = self.bump().expect("called at a quote");
        let mut out = String::new();
        loop {
            let Some(c) = self.bump() else {
                return Err(
                    self.error(format!("Unterminated string. Expected delimiter: {quote}."))
                );
            };
            match c {
                c if c == quote => return Ok(out),
                '\\' => {
                    let Some(escape) = self.bump() else {
                        return Err(self
                            .error(format!("Unterminated string. Expected delimiter: {quote}.")));
                    };
                    match escape {
                        'b' => out.push('\u{8}'),
                        't' => out.push('\t'),
                        'n' => out.push('\n'),
                        'f' => out.push('\u{c}'),
                        'r' => out.push('\r'),
                        '\\' | '"' | '\'' | '/' => out.push(escape),
                        'u' => {
                            let unit = self.hex4()?;
                            // A surrogate pair joins; a lone half is U+FFFD.
                            if (0xD800..0xDC00).contains(&unit)
                                && self.peek() == Some('\\')
                                && self.chars.get(self.at + 1) == Some(&'u')
                            {
                                let mark = (self.at, self.line, self.line_start);
                                self.bump();
                                self.bump();
                                let low = self.hex4()?;
                                if (0xDC00..0xE000).contains(&low) {
                                    let code = 0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00);
                                    out.push(char::from_u32(code).unwrap_or('\u{fffd}'));
                                    continue;
                                }
                                (self.at, self.line, self.line_start) = mark;
                            }
                            out.push(char::from_u32(unit).unwrap_or('\u{fffd}'));
                        }
                        other => {
                            return Err(self.error(format!("Bad JSON escape sequence: \\{other}.")))
                        }
                    }
                }
                c => out.push(c),
            }
        }
    }

    fn hex4(&mut self) -> Result<u32, JsonError> {
        let mut unit = 0u32;
        for _ in 0..4 {
            let digit = self.peek().and_then(|c| c.to_digit(16));
            match digit {
                Some(d) => {
                    self.bump();
                    unit = unit * 16 + d;
                }
                None => {
                    return Err(self.error("Invalid Unicode escape sequence.".into()));
                }
            }
        }
        Ok(unit)
    }

    fn array(&mut self, depth: usize) -> Result<Value, JsonError> {
        self.bump();
        let mut items = Vec::new();
        // The path gains `[i]` when the first item starts and moves on only
        // when the next one does, as Json.NET's does.
        let mut indexed = false;
        let mut at_item = |reader: &mut Reader, index: usize| {
            if indexed {
                if let Some(Segment::Index(i)) = reader.path.last_mut() {
                    *i = index;
                }
            } else {
                reader.path.push(Segment::Index(index));
                indexed = true;
            }
        };
        loop {
            self.skip_blank()?;
            match self.peek() {
                None => return Err(self.unexpected_end()),
                Some(']') => {
                    self.bump();
                    break;
                }
                // An empty slot: Json.NET reads `undefined` and goes on.
                Some(',') => {
                    at_item(self, items.len());
                    self.bump();
                    items.push(Value::Undefined);
                    continue;
                }
                Some(_) => {}
            }
            at_item(self, items.len());
            items.push(self.value(depth)?);
            self.skip_blank()?;
            match self.peek() {
                Some(',') => {
                    self.bump();
                }
                Some(']') => {
                    self.bump();
                    break;
                }
                None => return Err(self.unexpected_end()),
                Some(c) => {
                    return Err(self.error(format!(
                        "After parsing a value an unexpected character was encountered: {c}."
                    )))
                }
            }
        }
        if indexed {
            self.path.pop();
        }
        Ok(Value::Array(items))
    }

    fn property_name(&mut self) -> Result<String, JsonError> {
        match self.peek() {
            Some('"' | '\'') => self.string(),
            Some(c) if identifier_char(c) => {
                let mut name = String::new();
                while let Some(c) = self.peek() {
                    if identifier_char(c) {
                        name.push(c);
                        self.bump();
                    } else if c.is_whitespace() || c == ':' {
                        break;
                    } else {
                        return Err(self.error(format!(
                            "Invalid JavaScript property identifier character: {c}."
                        )));
                    }
                }
                Ok(name)
            }
            None => Err(self.unexpected_end()),
            Some(c) => Err(self.error(format!("Invalid property identifier character: {c}."))),
        }
    }

    fn object(&mut self, depth: usize) -> Result<Value, JsonError> {
        self.bump();
        let mut members = Vec::new();
        loop {
            self.skip_blank()?;
            if self.peek() == Some('}') {
                self.bump();
                break;
            }
            let name = self.property_name()?;
            self.skip_blank()?;
            match self.peek() {
                Some(':') => {
                    self.bump();
                }
                None => return Err(self.unexpected_end()),
                Some(c) => {
                    return Err(self.error(format!(
                        "Invalid character after parsing property name. Expected ':' but got: {c}."
                    )))
                }
            }
            // The path names the member until the next one starts, as
            // Json.NET's does (an error after its value names it).
            self.path.push(Segment::Member(name.clone()));
            self.skip_blank()?;
            let value = self.value(depth)?;
            members.push((name, value));
            self.skip_blank()?;
            let end = match self.peek() {
                Some(',') => false,
                Some('}') => true,
                None => return Err(self.unexpected_end()),
                Some(c) => {
                    return Err(self.error(format!(
                        "After parsing a value an unexpected character was encountered: {c}."
                    )))
                }
            };
            self.bump();
            self.path.pop();
            if end {
                break;
            }
        }
        Ok(Value::Object(members))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(input: &str) -> Result<Option<Value>, JsonError> {
        parse(input.as_bytes(), ReaderOptions::default())
    }

    fn int(s: &str) -> Value {
        Value::Integer(s.into())
    }

    #[test]
    fn what_json_net_accepts_beyond_rfc_8259() {
        let cases: &[(&str, Value)] = &[
            (
                "{'fileIds': ['1', 2,], folderIds: [3], /* c */ // line\n}",
                Value::Object(vec![
                    (
                        "fileIds".into(),
                        Value::Array(vec![Value::String("1".into()), int("2")]),
                    ),
                    ("folderIds".into(), Value::Array(vec![int("3")])),
                ]),
            ),
            (
                "\u{feff}{\"a\":[1,,2], $b_1: 0x1F, c: 012, d: -0, e: 1.5e3}",
                Value::Object(vec![
                    (
                        "a".into(),
                        Value::Array(vec![int("1"), Value::Undefined, int("2")]),
                    ),
                    ("$b_1".into(), int("31")),
                    ("c".into(), int("10")),
                    ("d".into(), int("0")),
                    ("e".into(), Value::Float("1.5e3".into())),
                ]),
            ),
            (
                r#"{"a":1,"A":2,"a":3}"#,
                Value::Object(vec![
                    ("a".into(), int("1")),
                    ("A".into(), int("2")),
                    ("a".into(), int("3")),
                ]),
            ),
            (
                "{\"s\":\"line\nbreak \\u00e9\\ud83d\\ude00 \\ud800 \\'\"}",
                Value::Object(vec![(
                    "s".into(),
                    Value::String("line\nbreak é😀 \u{fffd} '".into()),
                )]),
            ),
            (
                "[NaN, Infinity, -Infinity, undefined, null, true, false]",
                Value::Array(vec![
                    Value::Float("NaN".into()),
                    Value::Float("Infinity".into()),
                    Value::Float("-Infinity".into()),
                    Value::Undefined,
                    Value::Null,
                    Value::Bool(true),
                    Value::Bool(false),
                ]),
            ),
        ];
        for (input, want) in cases {
            assert_eq!(read(input).unwrap().as_ref(), Some(want), "{input}");
        }
        assert_eq!(read("  /* nothing */ ").unwrap(), None);
    }

    #[test]
    fn errors_read_as_json_net_writes_them() {
        let cases = [
            (
                "{\"a\":1} x",
                "Additional text encountered after finished reading JSON content: x. Path '', line 1, position 8.",
            ),
            ("{\"a\":[1,2", "Unexpected end when reading JSON. Path 'a[1]', line 1, position 9."),
            (
                "{\"a\" 1}",
                "Invalid character after parsing property name. Expected ':' but got: 1. Path '', line 1, position 5.",
            ),
            (
                "{\"a\":1 \"b\":2}",
                "After parsing a value an unexpected character was encountered: \". Path 'a', line 1, position 7.",
            ),
            ("{\"a\":tru}", "Error parsing true value. Path 'a', line 1, position 8."),
            (
                "{a-b:1}",
                "Invalid JavaScript property identifier character: -. Path '', line 1, position 2.",
            ),
            ("{\"a\":\"x\\q\"}", "Bad JSON escape sequence: \\q. Path 'a', line 1, position 9."),
            ("{\"a\":08}", "Input string '08' is not a valid number. Path 'a', line 1, position 7."),
            ("/* open", "Unexpected end while parsing comment. Path '', line 1, position 7."),
        ];
        for (input, want) in cases {
            assert_eq!(read(input).unwrap_err().message, want, "{input}");
        }
    }

    #[test]
    fn depth_is_capped_and_the_stream_form_stops_after_the_root() {
        let deep = "[".repeat(64) + &"]".repeat(64);
        assert!(read(&deep).is_ok());
        let deeper = "[".repeat(65) + &"]".repeat(65);
        let error = read(&deeper).unwrap_err().message;
        assert!(
            error.starts_with("The reader's MaxDepth of 64 has been exceeded."),
            "{error}"
        );
        // Far past any stack: refused at the cap, not recursed into.
        assert!(read(&"[".repeat(1_000_000)).is_err());
        let streamed = ReaderOptions {
            reject_additional_content: false,
            ..ReaderOptions::default()
        };
        assert_eq!(
            parse(b"{\"a\":1} trailing", streamed).unwrap(),
            Some(Value::Object(vec![("a".into(), int("1"))]))
        );
    }
}
