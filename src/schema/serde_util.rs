//! Small serde building blocks shared by the wire model: placeholders for agentgateway keys
//! Portcullis does not implement, and the few "string or list" shapes agentgateway accepts.
//!
//! Owns only deserialization shapes; it does not judge values (durations, regexes, ranges are
//! checked in `config::validate`).

use std::borrow::Cow;
use std::fmt;

use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::Deserialize;

/// A key that agentgateway understands but Portcullis does not implement.
///
/// The value is kept verbatim so validation can report it (`agentgateway feature 'X' is not
/// supported by Portcullis`) with its path instead of silently dropping it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(transparent)]
pub(crate) struct Unsupported(pub serde_json::Value);

impl JsonSchema for Unsupported {
    fn schema_name() -> Cow<'static, str> {
        "Unsupported".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        // Only agentgateway's "feature off" values validate: an editor marks anything else.
        json_schema!({
            "description": "An agentgateway feature Portcullis does not implement: a config that sets it is refused with an error naming it.",
            "x-portcullis": "unsupported",
            "anyOf": [{"type": "null"}, {"const": false}, {"type": "array", "maxItems": 0}]
        })
    }
}

impl Unsupported {
    /// `false`, `[]` and `null` are agentgateway's "feature off" values and are tolerated.
    pub(crate) fn is_set(&self) -> bool {
        use serde_json::Value;
        match &self.0 {
            Value::Null | Value::Bool(false) => false,
            Value::Array(a) => !a.is_empty(),
            _ => true,
        }
    }
}

/// A key that is pure process tuning with no security meaning; accepted and ignored (named in a
/// warning at every load).
#[derive(Debug, Clone, Copy, Default, PartialEq, Deserialize)]
#[serde(transparent)]
pub(crate) struct Ignored(de::IgnoredAny);

impl JsonSchema for Ignored {
    fn schema_name() -> Cow<'static, str> {
        "Ignored".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "Accepted for agentgateway compatibility; no effect in Portcullis (a warning names it at every load).",
            "x-portcullis": "no-effect"
        })
    }
}

impl JsonSchema for StringOrList {
    fn schema_name() -> Cow<'static, str> {
        "StringOrList".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]})
    }
}

impl JsonSchema for Body {
    fn schema_name() -> Cow<'static, str> {
        "Body".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A UTF-8 string, or an array of bytes.",
            "anyOf": [
                {"type": "string"},
                {"type": "array", "items": {"type": "integer", "minimum": 0, "maximum": 255}}
            ]
        })
    }
}

impl JsonSchema for WorkerThreads {
    fn schema_name() -> Cow<'static, str> {
        "WorkerThreads".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A thread count, or a percentage of the CPUs available (\"50%\").",
            "anyOf": [{"type": "integer", "minimum": 1}, {"type": "string", "pattern": "^[0-9]+%?$"}]
        })
    }
}

/// `string` or `[string, ...]` (e.g. `config.logging.level`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum StringOrList {
    One(String),
    Many(Vec<String>),
}

impl<'de> Deserialize<'de> for StringOrList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = StringOrList;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or a list of strings")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(StringOrList::One(v.to_owned()))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::new();
                while let Some(s) = seq.next_element::<String>()? {
                    out.push(s);
                }
                Ok(StringOrList::Many(out))
            }
        }
        d.deserialize_any(V)
    }
}

/// A response body given as a UTF-8 string or as an array of bytes (`directResponse.body`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Body(pub Vec<u8>);

impl<'de> Deserialize<'de> for Body {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Body;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or an array of bytes")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Body(v.as_bytes().to_vec()))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::new();
                while let Some(b) = seq.next_element::<u8>()? {
                    out.push(b);
                }
                Ok(Body(out))
            }
        }
        d.deserialize_any(V)
    }
}

/// `config.workerThreads`: a number, or a string holding a number or a percentage of cores
/// (`"50%"`). Interpreted by [`crate::config::parse_worker_threads`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum WorkerThreads {
    Number(i64),
    Text(String),
}

impl<'de> Deserialize<'de> for WorkerThreads {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = WorkerThreads;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a thread count or a percentage string like \"50%\"")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                Ok(WorkerThreads::Number(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(WorkerThreads::Number(i64::try_from(v).unwrap_or(i64::MAX)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(WorkerThreads::Text(v.to_owned()))
            }
        }
        d.deserialize_any(V)
    }
}
