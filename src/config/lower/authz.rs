//! Lowering of `mcpAuthorization` and `authorization` (route and backend policies): the rules
//! compiled into `policy::authz` rule sets, errors naming the rule's path and position.

use std::sync::Arc;

use crate::config::ConfigError;
use crate::policy::authz::{self, Policy, RuleKind, RuleSet};
use crate::schema as model;

/// The rules of one or more `RuleSet`s (each with the path it was read at), compiled as one:
/// agentgateway composes route and backend `mcpAuthorization` rules into one set.
pub(super) fn compile(
    sets: &[(&model::RuleSet, String)],
    policy: Policy,
    errs: &mut Vec<ConfigError>,
    warnings: &mut Vec<String>,
) -> Option<Arc<RuleSet>> {
    let mut rules = Vec::new();
    let mut paths = Vec::new();
    for (set, path) in sets {
        let model::RuleSet { rules: list } = set;
        for (i, r) in list.iter().enumerate() {
            let (kind, src) = match r {
                model::Rule::Allow(s) | model::Rule::Keyed(model::KeyedRule::Allow(s)) => {
                    (RuleKind::Allow, s)
                }
                model::Rule::Keyed(model::KeyedRule::Deny(s)) => (RuleKind::Deny, s),
                model::Rule::Keyed(model::KeyedRule::Require(s)) => (RuleKind::Require, s),
            };
            rules.push((kind, src.as_str()));
            paths.push(format!("{path}.rules[{i}]"));
        }
    }
    match authz::compile(&rules, policy) {
        Ok(set) => {
            if set.has_deny() {
                let at = sets.first().map_or("", |(_, p)| p.as_str());
                warnings.push(format!(
                    "{at}: a `deny` rule that cannot be evaluated (a missing claim, no token) does not deny, as in agentgateway; `require` fails closed"
                ));
            }
            Some(Arc::new(set))
        }
        Err(e) => {
            errs.push(ConfigError::new(
                paths[e.index].clone(),
                format!("line {}, column {}: {}", e.line, e.column, e.message),
            ));
            None
        }
    }
}
