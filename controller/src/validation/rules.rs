//! The CRDs' `x-kubernetes-validations` CEL rules, evaluated with the `cel` crate plus the
//! Kubernetes CEL libraries those rules call.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

use cel::{Context, Env, Program};
use serde_json::Value as Json;

/// Why a rule could not give its verdict (a rule that evaluates to `false` is not an error).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RuleError {
    /// The rule's CEL does not compile.
    #[error("cannot compile rule `{rule}`: {message}")]
    Compile {
        /// The rule's CEL source.
        rule: String,
        /// The compiler's message.
        message: String,
    },
    /// Evaluation failed (a missing field, a type error, ...).
    #[error("rule `{rule}` failed to evaluate: {message}")]
    Eval {
        /// The rule's CEL source.
        rule: String,
        /// The interpreter's message.
        message: String,
    },
    /// The rule evaluated to something other than a bool.
    #[error("rule `{rule}` did not evaluate to a bool")]
    NotBool {
        /// The rule's CEL source.
        rule: String,
    },
}

/// Compiles each rule once (the CRDs hold a few hundred) and evaluates it against `self`.
pub struct Rules {
    env: Arc<Env>,
    programs: Mutex<HashMap<String, Result<Arc<Program>, RuleError>>>,
}

impl Default for Rules {
    fn default() -> Self {
        Rules::new()
    }
}

impl Rules {
    /// An environment with the CEL standard library and the Kubernetes extensions the CRD rules
    /// call.
    pub fn new() -> Rules {
        let mut env = Env::stdlib();
        // Kubernetes enables cel-go's strings extension (`split`, `substring`, `lowerAscii`, ...).
        // The standard library and this extension are declared by the crate, so adding cannot
        // conflict; if a future version refused, the rules using them would report it.
        if let Err(e) = env.add_extension(cel::extensions::strings) {
            tracing::error!(error = %e, "CEL strings extension unavailable");
        }
        // The crate's `regex` feature is off, so nothing else declares `matches`.
        if let Err(e) = env.add_extension(super::cel_regex::register) {
            tracing::error!(error = %e, "CEL matches() unavailable");
        }
        Rules {
            env: Arc::new(env),
            programs: Mutex::new(HashMap::new()),
        }
    }

    /// `Ok(true)` when the rule holds for `this` (the value the rule's schema node describes).
    pub fn check(&self, rule: &str, this: cel::Value) -> Result<bool, RuleError> {
        self.with_self(this).check(rule)
    }

    /// A context binding `self` once, for the several rules of one schema node.
    pub fn with_self(&self, this: cel::Value) -> Evaluation<'_> {
        let mut context = Context::with_env(self.env.clone());
        kubernetes_library(&mut context);
        context.add_variable_from_value("self", this);
        Evaluation {
            rules: self,
            context,
        }
    }

    fn program(&self, rule: &str) -> Result<Arc<Program>, RuleError> {
        let mut programs = self.programs.lock().unwrap_or_else(PoisonError::into_inner);
        programs
            .entry(rule.to_string())
            .or_insert_with(|| {
                self.env
                    .compile(rule)
                    .map(Arc::new)
                    .map_err(|e| RuleError::Compile {
                        rule: rule.into(),
                        message: e.to_string(),
                    })
            })
            .clone()
    }
}

/// The rules of one node, evaluated against the same `self`.
pub struct Evaluation<'r> {
    rules: &'r Rules,
    context: Context<'r, 'r>,
}

impl Evaluation<'_> {
    /// Evaluates `rule` against this node's `self`: `Ok(false)` means the object violates it.
    pub fn check(&self, rule: &str) -> Result<bool, RuleError> {
        let program = self.rules.program(rule)?;
        match program.execute(&self.context) {
            Ok(cel::Value::Bool(verdict)) => Ok(verdict),
            Ok(_) => Err(RuleError::NotBool { rule: rule.into() }),
            Err(e) => Err(RuleError::Eval {
                rule: rule.into(),
                message: e.to_string(),
            }),
        }
    }
}

/// The functions of Kubernetes' CEL libraries (k8s.io/apiserver/pkg/cel/library) that the CRDs
/// call and the `cel` crate lacks. Registration fails only on a name clash with the crate's own
/// declarations, which would then shadow ours; the rules using them would fail visibly.
fn kubernetes_library(context: &mut Context<'_, '_>) {
    let results = [
        context.add_function("isIP", |s: Arc<String>| is_ip(&s)),
        context.add_function("isCIDR", |s: Arc<String>| is_cidr(&s)),
    ];
    for r in results {
        if let Err(e) = r {
            tracing::error!(error = %e, "cannot register a Kubernetes CEL function");
        }
    }
}

/// Kubernetes' `isIP`: an IPv4 or IPv6 address, without a zone; IPv4-mapped IPv6 addresses are
/// refused as the library's `ip()` refuses them. Rust's parser already refuses leading zeros.
fn is_ip(s: &str) -> bool {
    match s.parse::<IpAddr>() {
        Ok(IpAddr::V4(_)) => true,
        Ok(IpAddr::V6(v6)) => v6.to_ipv4_mapped().is_none(),
        Err(_) => false,
    }
}

/// Kubernetes' `isCIDR`: an address and a prefix length.
fn is_cidr(s: &str) -> bool {
    s.parse::<ipnet::IpNet>()
        .is_ok_and(|net| is_ip(&net.addr().to_string()))
}

/// Property names that CEL cannot spell as identifiers, as the API server escapes them
/// (`namespace` is reachable as `__namespace__`, `x-y` as `x__dash__y`).
pub fn escape_property(name: &str) -> String {
    const RESERVED: &[&str] = &[
        "true",
        "false",
        "null",
        "in",
        "as",
        "break",
        "const",
        "continue",
        "else",
        "for",
        "function",
        "if",
        "import",
        "let",
        "loop",
        "package",
        "namespace",
        "return",
        "var",
        "void",
        "while",
    ];
    if RESERVED.contains(&name) {
        return format!("__{name}__");
    }
    name.replace("__", "__underscores__")
        .replace('.', "__dot__")
        .replace('-', "__dash__")
        .replace('/', "__slash__")
}

/// The CEL value of a JSON value, shaped by its schema node: declared properties are escaped,
/// map keys (`additionalProperties`) are not, and a `number` is a double even when written whole.
pub fn to_cel(schema: Option<&Json>, value: &Json) -> cel::Value {
    match value {
        Json::Null => cel::Value::Null,
        Json::Bool(b) => cel::Value::Bool(*b),
        Json::Number(n) => {
            let number_type =
                schema.and_then(|s| s.get("type")).and_then(Json::as_str) == Some("number");
            match (n.as_i64(), n.as_u64(), n.as_f64()) {
                (Some(i), _, _) if !number_type => cel::Value::Int(i),
                (None, Some(u), _) if !number_type => cel::Value::UInt(u),
                (_, _, Some(f)) => cel::Value::Float(f),
                _ => cel::Value::Null,
            }
        }
        Json::String(s) => cel::Value::String(Arc::new(s.clone())),
        Json::Array(items) => {
            let item_schema = schema.and_then(|s| s.get("items"));
            cel::Value::List(Arc::new(
                items.iter().map(|v| to_cel(item_schema, v)).collect(),
            ))
        }
        Json::Object(map) => {
            let properties = schema.and_then(|s| s.get("properties"));
            let additional = schema.and_then(|s| s.get("additionalProperties"));
            let mut out = HashMap::with_capacity(map.len());
            for (k, v) in map {
                let (key, child) = match properties.and_then(|p| p.get(k)) {
                    Some(prop) => (escape_property(k), Some(prop)),
                    None => (k.clone(), additional.filter(|a| a.is_object())),
                };
                out.insert(cel::objects::Key::String(Arc::new(key)), to_cel(child, v));
            }
            cel::Value::Map(cel::objects::Map { map: Arc::new(out) })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check(rule: &str, this: Json) -> Result<bool, RuleError> {
        Rules::new().check(rule, to_cel(None, &this))
    }

    #[test]
    fn macros_and_string_functions_of_the_crds_evaluate() {
        let listeners = json!([{"name": "a", "port": 80}, {"name": "b", "port": 80}]);
        assert_eq!(
            check(
                "self.all(l1, self.exists_one(l2, l1.name == l2.name))",
                listeners.clone()
            ),
            Ok(true)
        );
        assert_eq!(
            check("self.filter(l, l.port == 80).size() <= 1", listeners),
            Ok(false)
        );
        assert_eq!(
            check("self.split('/')[0].size() < 253", json!("a.b/c")),
            Ok(true)
        );
        assert_eq!(
            check(r#"self.matches(r"""^/[a-z]+$""")"#, json!("/abc")),
            Ok(true)
        );
        assert_eq!(
            check("duration(self) > duration('1s')", json!("2s")),
            Ok(true)
        );
    }

    #[test]
    fn is_ip_follows_the_kubernetes_library() {
        assert_eq!(check("isIP(self)", json!("10.0.0.1")), Ok(true));
        assert_eq!(check("isIP(self)", json!("fd00::1")), Ok(true));
        assert_eq!(check("isIP(self)", json!("::ffff:10.0.0.1")), Ok(false));
        assert_eq!(check("isIP(self)", json!("010.0.0.1")), Ok(false));
        assert_eq!(check("isIP(self)", json!("example.com")), Ok(false));
    }

    #[test]
    fn reserved_property_names_are_escaped_as_the_api_server_does() {
        let schema = json!({"type": "object", "properties": {"namespace": {"type": "string"}}});
        let this = to_cel(Some(&schema), &json!({"namespace": "ns"}));
        assert_eq!(
            Rules::new().check("self.__namespace__ == 'ns'", this),
            Ok(true)
        );
    }

    #[test]
    fn evaluation_errors_are_reported_not_treated_as_passing() {
        assert!(matches!(
            check("self.missing == 1", json!({})),
            Err(RuleError::Eval { .. })
        ));
        assert!(matches!(
            check("self +", json!({})),
            Err(RuleError::Compile { .. })
        ));
    }
}
