//! JSON read as its schema says: a struct only from a JSON object.
//!
//! serde's derived structs also accept an array and fill the fields by
//! position, so `[60]` was read as `{"seconds": 60}` and
//! `{"respond": [503]}` as `{"respond": {"status": 503}}` (found by
//! schemathesis against `docs/openapi.json`). [`Strict`] is a deserializer
//! over a parsed [`Value`] that refuses that at every depth; everything
//! else reads as `serde_json`'s own `Value` deserializer reads it.

use serde::de::value::{MapDeserializer, SeqDeserializer};
use serde::de::{self, Deserialize, Deserializer, IntoDeserializer, Unexpected, Visitor};
use serde_json::{Error, Value};

/// `value` as a `T`, structs only from objects; the error names the JSON
/// path (`serde_path_to_error`).
pub fn from_value<'de, T: Deserialize<'de>>(
    value: &'de Value,
) -> Result<T, serde_path_to_error::Error<Error>> {
    serde_path_to_error::deserialize(Strict(value))
}

/// An error as `path: message`, or the message alone when it is about the
/// whole document (`serde_path_to_error` calls that path `.`).
pub fn message(e: &serde_path_to_error::Error<Error>) -> String {
    match e.path().to_string().as_str() {
        "." => e.inner().to_string(),
        path => format!("{path}: {}", e.inner()),
    }
}

/// A [`Value`] whose structs must be objects.
#[derive(Clone, Copy)]
pub struct Strict<'de>(pub &'de Value);

fn unexpected(value: &Value) -> Unexpected<'_> {
    match value {
        Value::Null => Unexpected::Unit,
        Value::Bool(b) => Unexpected::Bool(*b),
        Value::Number(n) => match (n.as_u64(), n.as_i64(), n.as_f64()) {
            (Some(u), _, _) => Unexpected::Unsigned(u),
            (_, Some(i), _) => Unexpected::Signed(i),
            (_, _, Some(f)) => Unexpected::Float(f),
            _ => Unexpected::Other("number"),
        },
        Value::String(s) => Unexpected::Str(s),
        Value::Array(_) => Unexpected::Seq,
        Value::Object(_) => Unexpected::Map,
    }
}

impl<'de> Deserializer<'de> for Strict<'de> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.0 {
            Value::Null => visitor.visit_unit(),
            Value::Bool(b) => visitor.visit_bool(*b),
            Value::Number(n) => n.deserialize_any(visitor),
            Value::String(s) => visitor.visit_borrowed_str(s),
            Value::Array(items) => {
                let mut seq = SeqDeserializer::new(items.iter().map(Strict));
                let value = visitor.visit_seq(&mut seq)?;
                seq.end()?;
                Ok(value)
            }
            Value::Object(map) => {
                let mut entries =
                    MapDeserializer::new(map.iter().map(|(k, v)| (k.as_str(), Strict(v))));
                let value = visitor.visit_map(&mut entries)?;
                entries.end()?;
                Ok(value)
            }
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.0 {
            Value::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        match self.0 {
            Value::Object(_) => self.deserialize_any(visitor),
            other => Err(de::Error::invalid_type(unexpected(other), &"a JSON object")),
        }
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        match self.0 {
            // A unit variant by name.
            Value::String(s) => visitor.visit_enum(s.as_str().into_deserializer()),
            // `{"Variant": content}`.
            Value::Object(map) if map.len() == 1 => {
                let (variant, content) = map.iter().next().expect("one entry");
                visitor.visit_enum(Variant { variant, content })
            }
            other => Err(de::Error::invalid_type(
                unexpected(other),
                &"a string or an object of one key",
            )),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_newtype_struct(self)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct seq tuple tuple_struct map identifier
        ignored_any
    }
}

impl<'de> IntoDeserializer<'de, Error> for Strict<'de> {
    type Deserializer = Self;

    fn into_deserializer(self) -> Self {
        self
    }
}

/// An externally tagged enum's variant and its content.
struct Variant<'de> {
    variant: &'de str,
    content: &'de Value,
}

impl<'de> de::EnumAccess<'de> for Variant<'de> {
    type Error = Error;
    type Variant = Strict<'de>;

    fn variant_seed<S: de::DeserializeSeed<'de>>(
        self,
        seed: S,
    ) -> Result<(S::Value, Strict<'de>), Error> {
        let name = seed.deserialize(self.variant.into_deserializer())?;
        Ok((name, Strict(self.content)))
    }
}

impl<'de> de::VariantAccess<'de> for Strict<'de> {
    type Error = Error;

    fn unit_variant(self) -> Result<(), Error> {
        match self.0 {
            Value::Null => Ok(()),
            other => Err(de::Error::invalid_type(unexpected(other), &"unit variant")),
        }
    }

    fn newtype_variant_seed<S: de::DeserializeSeed<'de>>(self, seed: S) -> Result<S::Value, Error> {
        seed.deserialize(self)
    }

    fn tuple_variant<V: Visitor<'de>>(self, _len: usize, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_seq(visitor)
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_struct("", fields, visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use serde_json::json;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Inner {
        status: u16,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(rename_all = "lowercase")]
    enum How {
        Close,
        Reset,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Outer {
        name: Option<String>,
        #[serde(default)]
        list: Vec<Inner>,
        inner: Option<Inner>,
        how: Option<How>,
        seconds: Option<f64>,
    }

    #[test]
    fn objects_read_as_serde_json_reads_them() {
        let value = json!({"name": "x", "list": [{"status": 1}], "inner": {"status": 503},
                           "how": "reset", "seconds": 2});
        let strict: Outer = from_value(&value).unwrap();
        let loose: Outer = serde_json::from_value(value).unwrap();
        assert_eq!(strict, loose);
        assert_eq!(strict.seconds, Some(2.0));
        let nulls: Outer = from_value(&json!({"name": null, "inner": null})).unwrap();
        assert_eq!(nulls.name, None);
    }

    #[test]
    fn a_struct_from_an_array_is_refused_at_any_depth() {
        for (value, path) in [
            (json!(["x", [], null, null, null]), "."),
            (json!({"inner": [503]}), "inner"),
            (json!({"list": [[1]]}), "list[0]"),
        ] {
            // serde_json's own reader takes them all.
            assert!(
                serde_json::from_value::<Outer>(value.clone()).is_ok(),
                "{value}"
            );
            let error = from_value::<Outer>(&value).unwrap_err();
            assert_eq!(error.path().to_string(), path, "{value}");
            assert!(
                error.inner().to_string().contains("a JSON object"),
                "{error}"
            );
        }
    }

    #[test]
    fn shape_errors_still_name_the_path_and_the_type() {
        let error = from_value::<Outer>(&json!({"inner": {"status": "soon"}})).unwrap_err();
        assert_eq!(error.path().to_string(), "inner.status");
        assert!(
            error.inner().to_string().contains("expected u16"),
            "{error}"
        );
        let error = from_value::<Outer>(&json!({"inner": {"status": 70000}})).unwrap_err();
        assert!(error.inner().to_string().contains("u16"), "{error}");
        let error = from_value::<Outer>(&json!({"how": "later"})).unwrap_err();
        assert!(
            error.inner().to_string().contains("unknown variant"),
            "{error}"
        );
        let error = from_value::<Outer>(&json!({"colour": 1})).unwrap_err();
        assert!(
            error.inner().to_string().contains("unknown field"),
            "{error}"
        );
    }
}
