//! Reading agentgateway's local YAML config (v0.10.5 and current dialects) into the serde wire
//! model, with every error located by a path such as `binds[0].listeners[0].routes[0].policies`.
//!
//! Owns the front half of configuration: env expansion ([`expand_env`]), YAML → JSON → model
//! ([`model`]), and structural validation (`validate`), plus value parsers shared with lowering
//! ([`parse_duration`], [`parse_worker_threads`]). Does not: read files, watch for changes, or
//! build the runtime snapshot (lowering does), and never silently drops a key agentgateway
//! would act on — unimplemented features are reported by name.

mod env;
mod error;
pub mod model;
mod validate;
mod values;

#[cfg(test)]
mod tests;

pub use env::expand_env;
pub use error::{ConfigError, ConfigErrors};
pub use validate::validate;
pub use values::{parse_duration, parse_worker_threads, ThreadCount};

/// Expands env vars from the process environment, parses YAML, deserializes with paths and
/// validates. See [`load_str_with_env`].
pub fn load_str(text: &str) -> Result<model::LocalConfig, ConfigErrors> {
    load_str_with_env(text, &|name| std::env::var(name).ok())
}

/// [`load_str`] with an explicit environment (tests, fuzzing, `--validate-only` dry runs).
pub fn load_str_with_env(
    text: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<model::LocalConfig, ConfigErrors> {
    // agentgateway neutralises this marker so `$schema` is not taken for a variable.
    let text = text.replace(
        "# yaml-language-server: $schema",
        "# yaml-language-server: schema",
    );
    let expanded = expand_env(&text, lookup)?;
    let value = parse_yaml(&expanded)?;
    let cfg: model::LocalConfig =
        serde_path_to_error::deserialize(value).map_err(error::from_serde)?;
    validate(&cfg).map_err(ConfigErrors)?;
    Ok(cfg)
}

/// YAML text → JSON value, as agentgateway's `yamlviajson` does. An empty document is `{}`.
fn parse_yaml(text: &str) -> Result<serde_json::Value, ConfigError> {
    match serde_yaml_ng::from_str::<serde_json::Value>(text) {
        Ok(serde_json::Value::Null) => Ok(serde_json::Value::Object(Default::default())),
        Ok(v) => Ok(v),
        Err(e) => {
            let msg = e.to_string();
            let msg = match e.location() {
                Some(loc) if !msg.contains("line ") => {
                    format!(
                        "invalid YAML at line {} column {}: {msg}",
                        loc.line(),
                        loc.column()
                    )
                }
                _ => format!("invalid YAML: {msg}"),
            };
            Err(ConfigError::new(error::ROOT, msg))
        }
    }
}

/// Fuzz entry point: any UTF-8 input must yield `Ok` or `Err`, never a panic.
#[doc(hidden)]
pub fn fuzz_load(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = load_str_with_env(text, &|_| None);
    }
}

pub mod lower;
mod lower_auth;

pub use lower_auth::INVALID_DESCRIPTION;
mod tls;

/// Bytes of a config file → runtime snapshot: [`load_str`] then [`lower::lower`]. `base_dir`
/// resolves relative paths in the config (TLS files).
pub fn load_bytes(
    bytes: &[u8],
    base_dir: Option<&std::path::Path>,
) -> Result<crate::snapshot::Snapshot, ConfigErrors> {
    load_bytes_with_env(bytes, base_dir, &|name| std::env::var(name).ok())
}

/// [`load_bytes`] with an explicit environment (fuzzing, tests).
pub fn load_bytes_with_env(
    bytes: &[u8],
    base_dir: Option<&std::path::Path>,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<crate::snapshot::Snapshot, ConfigErrors> {
    let text = std::str::from_utf8(bytes).map_err(|e| {
        ConfigError::new(error::ROOT, format!("the config is not valid UTF-8: {e}"))
    })?;
    let model = load_str_with_env(text, lookup)?;
    lower::lower(&model, base_dir)
}
