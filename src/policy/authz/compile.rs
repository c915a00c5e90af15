//! Rule compilation: CEL parsing (with the string extension agentgateway users rely on, such as
//! `split`), the roots a rule may name, and the scopes it tests.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use cel::common::ast::{Expr, IdedExpr, LiteralValue};

use super::{Policy, Rule, RuleKind, RuleSet};

/// A rule that cannot be used, with where: the rule's index and a 1-based line and column in
/// its expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompileError {
    pub index: usize,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl std::fmt::Display for CompileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "rule {} (line {}, column {}): {}",
            self.index, self.line, self.column, self.message
        )
    }
}

thread_local! {
    /// The CEL environment: the standard library and the strings extension. One per thread,
    /// so evaluation never touches an `Arc` another thread also counts.
    static ENV: Arc<cel::Env> = Arc::new(new_env());
}

fn new_env() -> cel::Env {
    let mut env = cel::Env::stdlib();
    env.add_extension(cel::extensions::strings)
        .expect("the strings extension declares nothing twice");
    env
}

/// This thread's CEL environment.
pub(super) fn env() -> Arc<cel::Env> {
    ENV.with(Arc::clone)
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// Roots every policy may name; `mcp` only for `mcpAuthorization`.
const COMMON_ROOTS: [&str; 3] = ["jwt", "request", "source"];

/// agentgateway roots Portcullis does not provide, named in the error so it says why.
const FOREIGN_ROOTS: [&str; 12] = [
    "apiKey",
    "basicAuth",
    "backend",
    "llm",
    "extauthz",
    "extproc",
    "mcpGuardrails",
    "metadata",
    "proxy",
    "destination",
    "env",
    "response",
];

/// Longest rule accepted, bytes: evaluation recurses over the expression, so its size is
/// bounded before it is parsed.
pub(crate) const MAX_RULE_LEN: usize = 4096;

/// Deepest expression accepted (nested calls, operators, selections): evaluation recurses on a
/// worker's stack.
pub(crate) const MAX_DEPTH: usize = 32;

/// Stack of the thread that parses rules: the CEL parser recurses per nesting level (tens of
/// KiB each in debug builds), which a [`MAX_RULE_LEN`] rule cannot exhaust here.
const PARSER_STACK: usize = 64 << 20;

pub(super) fn compile(rules: &[(RuleKind, &str)], policy: Policy) -> Result<RuleSet, CompileError> {
    std::thread::scope(|s| {
        std::thread::Builder::new()
            .name("cel-compile".into())
            .stack_size(PARSER_STACK)
            .spawn_scoped(s, || compile_here(rules, policy))
            .map_err(|e| CompileError {
                index: 0,
                line: 1,
                column: 1,
                message: format!("cannot start the rule compiler: {e}"),
            })?
            .join()
            .unwrap_or_else(|_| {
                Err(CompileError {
                    index: 0,
                    line: 1,
                    column: 1,
                    message: "the CEL parser failed on these rules".into(),
                })
            })
    })
}

fn compile_here(rules: &[(RuleKind, &str)], policy: Policy) -> Result<RuleSet, CompileError> {
    let env = env();
    let mut out = Vec::with_capacity(rules.len());
    let mut per_request = false;
    let mut all_scopes: Vec<String> = Vec::new();
    for (index, (kind, source)) in rules.iter().enumerate() {
        let refuse = |message: String| CompileError {
            index,
            line: 1,
            column: 1,
            message,
        };
        if source.len() > MAX_RULE_LEN {
            return Err(refuse(format!(
                "a rule is at most {MAX_RULE_LEN} bytes (this one is {})",
                source.len()
            )));
        }
        // The parser is a dependency: a panic in it refuses the rule, never the process.
        let parsed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| env.compile(source)))
            .map_err(|_| refuse("the CEL parser failed on this rule".to_owned()))?;
        let program = parsed.map_err(|e| {
            let first = e.errors.first();
            let (line, column) = first.map_or((1, 1), |e| (e.pos.0.max(1), e.pos.1.max(1)));
            let message = first.map_or_else(|| e.to_string(), |e| e.msg.clone());
            CompileError {
                index,
                line: line as usize,
                column: column as usize,
                message: format!("not a CEL expression: {message}"),
            }
        })?;
        let depth = depth_of(program.expression());
        if depth > MAX_DEPTH {
            return Err(refuse(format!(
                "the expression nests {depth} deep; at most {MAX_DEPTH} is accepted"
            )));
        }
        let info = program.source_info();
        let mut roots = Vec::new();
        free_idents(program.expression(), &mut Vec::new(), &mut roots);
        for (name, id) in &roots {
            let known =
                COMMON_ROOTS.contains(&name.as_str()) || (policy == Policy::Mcp && name == "mcp");
            if known {
                per_request |= name == "request" || name == "source";
                continue;
            }
            let (line, column) = info
                .offset_for(*id)
                .map_or((1, 1), |(start, _)| line_col(source, start as usize));
            let available = match policy {
                Policy::Mcp => "jwt, mcp, request, source",
                Policy::Http => "jwt, request, source",
            };
            let message = if FOREIGN_ROOTS.contains(&name.as_str()) {
                format!("`{name}` is an agentgateway variable Portcullis does not provide (available: {available})")
            } else if name == "mcp" {
                format!(
                    "`mcp` is only available in mcpAuthorization rules (available: {available})"
                )
            } else {
                format!("unknown variable `{name}` (available: {available})")
            };
            return Err(CompileError {
                index,
                line,
                column,
                message,
            });
        }
        let mut scopes = Vec::new();
        scope_literals(program.expression(), &mut scopes);
        for s in &scopes {
            if !all_scopes.contains(s) {
                all_scopes.push(s.clone());
            }
        }
        out.push(Rule {
            kind: *kind,
            program,
            scopes,
        });
    }
    Ok(RuleSet {
        id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
        has_allow: out.iter().any(|r| r.kind == RuleKind::Allow),
        rules: out,
        per_request,
        scopes: all_scopes,
    })
}

/// How deep an expression nests.
fn depth_of(e: &IdedExpr) -> usize {
    let children: Vec<&IdedExpr> = match &e.expr {
        Expr::Select(s) => vec![&s.operand],
        Expr::Call(c) => c.target.iter().map(|t| &**t).chain(c.args.iter()).collect(),
        Expr::List(l) => l.elements.iter().collect(),
        Expr::Map(m) => m.entries.iter().flat_map(entry_children).collect(),
        Expr::Struct(s) => s.entries.iter().flat_map(entry_children).collect(),
        Expr::Comprehension(c) => vec![
            &c.iter_range,
            &c.accu_init,
            &c.loop_cond,
            &c.loop_step,
            &c.result,
        ],
        Expr::Ident(_) | Expr::Literal(_) | Expr::Unspecified => Vec::new(),
    };
    1 + children.into_iter().map(depth_of).max().unwrap_or(0)
}

/// 1-based line and column (in characters) of byte `offset` in `source`.
fn line_col(source: &str, offset: usize) -> (usize, usize) {
    let before = source.get(..offset).unwrap_or(source);
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

/// The identifiers an expression reads that no comprehension binds, with their expression ids.
fn free_idents(e: &IdedExpr, bound: &mut Vec<String>, out: &mut Vec<(String, u64)>) {
    match &e.expr {
        Expr::Ident(name) => {
            if !name.starts_with('@')
                && !bound.contains(name)
                && !out.iter().any(|(n, _)| n == name)
            {
                out.push((name.clone(), e.id));
            }
        }
        Expr::Select(s) => free_idents(&s.operand, bound, out),
        Expr::Call(c) => {
            if let Some(t) = &c.target {
                free_idents(t, bound, out);
            }
            for a in &c.args {
                free_idents(a, bound, out);
            }
        }
        Expr::List(l) => {
            for x in &l.elements {
                free_idents(x, bound, out);
            }
        }
        Expr::Map(m) => {
            for x in m.entries.iter().flat_map(entry_children) {
                free_idents(x, bound, out);
            }
        }
        Expr::Struct(s) => {
            for x in s.entries.iter().flat_map(entry_children) {
                free_idents(x, bound, out);
            }
        }
        Expr::Comprehension(c) => {
            free_idents(&c.iter_range, bound, out);
            free_idents(&c.accu_init, bound, out);
            let before = bound.len();
            bound.push(c.iter_var.clone());
            if let Some(v) = &c.iter_var2 {
                bound.push(v.clone());
            }
            bound.push(c.accu_var.clone());
            free_idents(&c.loop_cond, bound, out);
            free_idents(&c.loop_step, bound, out);
            free_idents(&c.result, bound, out);
            bound.truncate(before);
        }
        Expr::Literal(_) | Expr::Unspecified => {}
    }
}

/// The expressions of a map or struct literal's entry.
fn entry_children(entry: &cel::common::ast::IdedEntryExpr) -> Vec<&IdedExpr> {
    use cel::common::ast::EntryExpr;
    match &entry.expr {
        EntryExpr::StructField(f) => vec![&f.value],
        EntryExpr::MapEntry(m) => vec![&m.key, &m.value],
    }
}

/// Scopes a rule tests: `"s" in jwt.scope.split(" ")`, `"s" in jwt.scp`, and
/// `jwt.scope.split(" ").exists(x, x == "s")`-free forms are not recognised (documented).
fn scope_literals(e: &IdedExpr, out: &mut Vec<String>) {
    match &e.expr {
        Expr::Call(c) => {
            if c.func_name == "@in" && c.args.len() == 2 {
                if let (Expr::Literal(LiteralValue::String(s)), true) =
                    (&c.args[0].expr, reads_scopes(&c.args[1]))
                {
                    let s = s.to_string();
                    if !out.contains(&s) {
                        out.push(s);
                    }
                }
            }
            if let Some(t) = &c.target {
                scope_literals(t, out);
            }
            for a in &c.args {
                scope_literals(a, out);
            }
        }
        Expr::Select(s) => scope_literals(&s.operand, out),
        Expr::Comprehension(c) => {
            scope_literals(&c.iter_range, out);
            scope_literals(&c.loop_step, out);
        }
        _ => {}
    }
}

/// `jwt.scp`, or `jwt.scope.split(<anything>)`.
fn reads_scopes(e: &IdedExpr) -> bool {
    let is_claim = |e: &IdedExpr, claim: &str| match &e.expr {
        Expr::Select(s) => {
            s.field == claim && matches!(&s.operand.expr, Expr::Ident(root) if root == "jwt")
        }
        _ => false,
    };
    match &e.expr {
        Expr::Call(c) if c.func_name == "split" => {
            c.target.as_deref().is_some_and(|t| is_claim(t, "scope"))
        }
        _ => is_claim(e, "scp"),
    }
}
