//! `/config_dump`: the config as loaded, with secrets redacted.
//!
//! Redacted: the value of every key whose name says it holds a secret (`secret`, `…token`,
//! `password`, `credential`, `apikey`/`api_key`, `authorization`, `cookie`), every value of a
//! stdio target's `env` and of a `headers` map (`config.tracing.headers`: exporter credentials
//! under any name), and the values of header modifiers that set credential-bearing headers. Key names are kept, so the dump still shows
//! what is configured.

use std::sync::Arc;

use serde_json::Value;

const REDACTED: &str = "<redacted>";

fn secret_key(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    // `…token` but not `maxTokens`/`tokensPerFill`.
    n.ends_with("token")
        || [
            "secret",
            "password",
            "credential",
            "apikey",
            "api_key",
            "authorization",
            "cookie",
            "privatekey",
            "private_key",
        ]
        .iter()
        .any(|w| n.contains(w))
}

fn redact(v: &mut Value, parent: Option<&str>) {
    match v {
        Value::Object(map) => {
            // A header modifier's entry: `{name: Authorization, value: …}`.
            let header_name = map
                .get("name")
                .and_then(Value::as_str)
                .is_some_and(secret_key);
            for (k, child) in map.iter_mut() {
                // `env` (a stdio server's environment) and a `headers` map (the trace exporter's
                // request headers: API keys under any name) hold credentials in every value.
                let secret = secret_key(k)
                    || matches!(parent, Some("env" | "headers"))
                    || (header_name && k == "value");
                if secret && !child.is_null() {
                    *child = Value::String(REDACTED.into());
                } else {
                    redact(child, Some(k));
                }
            }
        }
        Value::Array(items) => {
            for item in items {
                // `set: [[name, value], …]` (v0.10.5 header pairs).
                if let Value::Array(pair) = item {
                    if pair.len() == 2 && pair[0].as_str().is_some_and(secret_key) {
                        pair[1] = Value::String(REDACTED.into());
                        continue;
                    }
                }
                // A list's items are not the parent's map entries (`matches[].headers[]` are
                // header matches, not credentials).
                redact(item, None);
            }
        }
        _ => {}
    }
}

/// The dump of `value`, pretty JSON.
pub(crate) fn render(mut value: Value) -> Arc<str> {
    redact(&mut value, None);
    serde_json::to_string_pretty(&value)
        .unwrap_or_else(|_| "{}".into())
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_redacted_and_the_rest_kept() {
        let v = serde_json::json!({
            "config": {"xdsAuthToken": "t0k", "statsAddr": "127.0.0.1:1",
                       "tracing": {"headers": {"x-honeycomb-team": "hny_key"}}},
            "limits": {"localRateLimit": [{"maxTokens": 17, "tokensPerFill": 19}]},
            "binds": [{"listeners": [{"routes": [{
                "matches": [{"headers": [{"name": "x-team", "value": {"exact": "blue-team"}}]}],
                "policies": {
                    "requestHeaderModifier": {"set": [{"name": "Authorization", "value": "Bearer x"},
                                                       {"name": "x-team", "value": "blue"}],
                                              "add": [["Cookie", "c=1"], ["x-a", "b"]]},
                    "mcpAuthentication": {"clientSecret": "s3cret", "issuer": "https://idp"}
                },
                "backends": [{"mcp": {"targets": [{"name": "t", "stdio": {"cmd": "x", "env": {"GITHUB_TOKEN": "ghp", "HOME": "/h"}}}]}}]
            }]}]}]
        });
        let out = render(v);
        for secret in ["t0k", "Bearer x", "c=1", "s3cret", "ghp", "/h", "hny_key"] {
            assert!(!out.contains(secret), "{secret} in {out}");
        }
        for kept in [
            "17",
            "19",
            "127.0.0.1:1",
            "blue",
            "https://idp",
            "GITHUB_TOKEN",
            "x-team",
            "\"b\"",
        ] {
            assert!(out.contains(kept), "{kept} not in {out}");
        }
    }
}
