//! Reading agentgateway's local YAML config (v0.10.5 and current dialects) into the serde wire
//! model, with every error located by a path such as `binds[0].listeners[0].routes[0].policies`.
//!
//! Owns the front half of configuration: env expansion ([`expand_env`]), YAML → JSON → the wire
//! model (`crate::schema`), and structural validation (`validate`), plus value parsers shared with lowering
//! ([`parse_duration`], [`parse_worker_threads`]). Does not: read files, watch for changes, or
//! build the runtime snapshot (lowering does), and never silently drops a key agentgateway
//! would act on — unimplemented features are reported by name.

mod dump;
mod env;
mod validate;
mod values;

#[cfg(test)]
mod tests;

use crate::schema as model;
use crate::schema::error;
pub(crate) use crate::schema::ConfigError;
pub use crate::schema::ConfigErrors;
pub(crate) use env::expand_env;
pub(crate) use validate::validate;
pub(crate) use values::{parse_duration, parse_worker_threads, sampling};

/// [`load_str`] with an explicit environment (tests, fuzzing, `--validate-only` dry runs).
pub(crate) fn load_str_with_env(
    text: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<model::LocalConfig, ConfigErrors> {
    match load_model(text, lookup)? {
        Loaded {
            model: Some(cfg),
            errors,
            ..
        } if errors.is_empty() => Ok(cfg),
        Loaded { errors, .. } => Err(ConfigErrors(errors)),
    }
}

/// What [`load_model`] found: every error, and the model of the config with the offending
/// keys taken out (when anything was left to build one), for the later stages to check too.
struct Loaded {
    model: Option<model::LocalConfig>,
    errors: Vec<ConfigError>,
    /// Paths of values taken out for a wrong type or shape (not unknown keys): an error a later
    /// stage reports at or above one of them may only be a consequence of the removal.
    removed: Vec<String>,
    /// The document as parsed (environment expanded), for `/config_dump`.
    value: serde_json::Value,
}

impl Loaded {
    /// Adds a later stage's errors, except those about what was taken out.
    fn add_later(&mut self, errors: Vec<ConfigError>) {
        let related = |path: &str| {
            self.removed
                .iter()
                .any(|r| error::within(path, r) || error::within(r, path))
        };
        let keep: Vec<ConfigError> = errors.into_iter().filter(|e| !related(&e.path)).collect();
        for e in keep {
            if !self.errors.contains(&e) {
                self.errors.push(e);
            }
        }
    }
}

/// How many errors one pass reports at most.
const MAX_ERRORS: usize = 100;

/// RequestFacts expansion, YAML, the serde model and validation, reporting every error rather than the
/// first: serde stops at the first problem, so the key that holds it is taken out of the
/// document and deserialization runs again, until the rest is clean (then validated).
fn load_model(text: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<Loaded, ConfigErrors> {
    // agentgateway neutralises this marker so `$schema` is not taken for a variable.
    let text = text.replace(
        "# yaml-language-server: $schema",
        "# yaml-language-server: schema",
    );
    let expanded = expand_env(&text, lookup)?;
    let mut value = parse_yaml(&expanded)?;
    let mut loaded = Loaded {
        model: None,
        errors: Vec::new(),
        removed: Vec::new(),
        value: serde_json::Value::Null,
    };
    for _ in 0..MAX_ERRORS {
        let err = match serde_path_to_error::deserialize::<_, model::LocalConfig>(&value) {
            Ok(cfg) => {
                loaded.add_later(validate(&cfg).err().unwrap_or_default());
                loaded.model = Some(cfg);
                loaded.value = value;
                return Ok(loaded);
            }
            Err(err) => err,
        };
        let segments: Vec<serde_path_to_error::Segment> = err.path().iter().cloned().collect();
        let raw = err.inner().to_string();
        let e = error::from_serde(err);
        // "missing field `x`" right after x was taken out for its type is the same error.
        let consequence = raw
            .strip_prefix("missing field `")
            .and_then(|r| r.split_once('`'))
            .is_some_and(|(key, _)| {
                let parent = if e.path == error::ROOT { "" } else { &e.path };
                loaded.removed.contains(&error::join(parent, key))
            });
        if !consequence && !loaded.errors.contains(&e) {
            loaded.errors.push(e);
        }
        let unknown_key = raw.starts_with("unknown field `");
        match error::take_out(&mut value, &segments, &raw, &|v| {
            serde_path_to_error::deserialize::<_, model::LocalConfig>(v)
                .err()
                .map(|e| (error::from_serde_path(e.path()), e.inner().to_string()))
        }) {
            Some(path) if !unknown_key => loaded.removed.push(path),
            Some(_) => {}
            None => break, // nothing left to take out: report what was found
        }
    }
    Ok(loaded)
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
pub(crate) fn fuzz_load(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = load_str_with_env(text, &|_| None);
    }
}

pub(crate) mod lower;

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
pub(crate) fn load_bytes_with_env(
    bytes: &[u8],
    base_dir: Option<&std::path::Path>,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<crate::snapshot::Snapshot, ConfigErrors> {
    let text = std::str::from_utf8(bytes).map_err(|e| {
        ConfigError::new(error::ROOT, format!("the config is not valid UTF-8: {e}"))
    })?;
    let mut loaded = load_model(text, lookup)?;
    // A config that serves nothing is refused: an empty, comments-only or truncated file (or
    // `binds: []`) written over the watched config must not take the proxy offline.
    if loaded.model.as_ref().is_some_and(|m| m.binds.is_empty()) {
        loaded.errors.push(ConfigError::new(
            "binds",
            "the config defines no listener (an empty or comments-only file, or `binds: []`): \
             it would serve nothing, so it is refused",
        ));
    }
    // Lowering assumes a valid model (and reads files, resolves names): only a clean one.
    match loaded.model.take() {
        Some(model) if loaded.errors.is_empty() => {
            let mut snap = lower::lower(&model, base_dir)?;
            snap.dump = dump::render(loaded.value);
            Ok(snap)
        }
        _ => Err(ConfigErrors(loaded.errors)),
    }
}
