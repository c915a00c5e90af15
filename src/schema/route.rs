//! `routes[]` and `routes[].matches[]`, both dialects (v0.10.5 `regex: ["re", n]`, current
//! `regex: "re"`).
//!
//! Owns the shapes only; regexes are compiled by `config::validate` (to reject bad ones) and again
//! by routing when it builds its matchers.

use std::fmt;

use schemars::JsonSchema;
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::Deserialize;

use super::backend::Backend;
use super::policy::Policies;

#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct Route {
    /// Default `route<idx>`.
    pub name: Option<String>,
    /// Current only.
    pub namespace: Option<String>,
    /// Default `default`.
    pub rule_name: Option<String>,
    /// Wildcards allowed; empty means all hosts.
    #[serde(default)]
    pub hostnames: Vec<String>,
    /// Entries are OR-ed. Default `[{path: {pathPrefix: "/"}}]`.
    #[serde(default = "default_matches")]
    pub matches: Vec<Match>,
    pub policies: Option<Policies>,
    #[serde(default)]
    pub backends: Vec<Backend>,
}

fn default_matches() -> Vec<Match> {
    vec![Match::default()]
}

/// One match entry; all its conditions are AND-ed.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct Match {
    /// Required in v0.10.5; defaults to `pathPrefix: /` in current.
    #[serde(default)]
    pub path: PathMatch,
    pub method: Option<String>,
    #[serde(default)]
    pub headers: Vec<HeaderMatch>,
    #[serde(default)]
    pub query: Vec<QueryMatch>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) enum PathMatch {
    /// Compared to the raw path.
    Exact(String),
    /// Segment-aware prefix (`/a` matches `/a` and `/a/b`, not `/ab`).
    PathPrefix(String),
    /// Must match the whole path.
    Regex(PathRegex),
}

impl Default for PathMatch {
    fn default() -> Self {
        PathMatch::PathPrefix("/".to_owned())
    }
}

/// A path regex: current `"re"` or v0.10.5 `["re", n]` where `n` is a precedence length.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PathRegex {
    pub pattern: String,
    /// The v0.10.5 tuple's second element; `None` in the current dialect.
    pub length: Option<usize>,
}

impl JsonSchema for PathRegex {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "PathRegex".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "A regex the whole path must match: \"re\", or v0.10.5's [\"re\", length].",
            "anyOf": [
                {"type": "string"},
                {"type": "array", "prefixItems": [{"type": "string"}, {"type": "integer", "minimum": 0}], "minItems": 2, "maxItems": 2}
            ]
        })
    }
}

impl<'de> Deserialize<'de> for PathRegex {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = PathRegex;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a regex string or a [regex, length] pair")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(PathRegex {
                    pattern: v.to_owned(),
                    length: None,
                })
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let pattern: String = seq
                    .next_element()?
                    .ok_or_else(|| de::Error::invalid_length(0, &self))?;
                let length: usize = seq
                    .next_element()?
                    .ok_or_else(|| de::Error::invalid_length(1, &self))?;
                if seq.next_element::<de::IgnoredAny>()?.is_some() {
                    return Err(de::Error::invalid_length(3, &self));
                }
                Ok(PathRegex {
                    pattern,
                    length: Some(length),
                })
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct HeaderMatch {
    /// Header name; current also allows pseudo headers (`:authority`, `:method`, …).
    pub name: String,
    pub value: ValueMatch,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct QueryMatch {
    pub name: String,
    pub value: ValueMatch,
}

/// Header or query value match; a regex must match the whole value.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) enum ValueMatch {
    Exact(String),
    Regex(String),
}
