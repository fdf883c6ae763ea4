//! CEL's `matches` with each pattern compiled once. The `cel` crate compiles the regex on every
//! call, and the HTTPRoute CRD's path rules run for every path match and rewrite of every route:
//! compiling dominated `sluice validate` on large configurations.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex, PoisonError};

use cel::common::types::{CelBool, CelString};
use cel::{DeclarationError, Env, ExecutionError};
use regex::Regex;

/// The CRDs' rules hold a handful of literal patterns; a pattern computed from an object's
/// values would be compiled per call past this many rather than grow the cache without bound.
const MAX_CACHED: usize = 64;

/// Process-wide: the crate's overloads are plain `fn`s, which cannot capture a cache.
static COMPILED: LazyLock<Mutex<HashMap<String, Regex>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

/// Declares `matches` as the crate's `regex` feature would (`s.matches(re)` and
/// `matches(s, re)`), backed by the cache.
pub(super) fn register(env: &mut Env) -> Result<(), DeclarationError> {
    cel::add_overload!(env, fn matches: (CelString<'_>, CelString<'_>) -> Result<CelBool>, id = "matches")?;
    cel::add_member_overload!(env, fn matches: (CelString<'_>, CelString<'_>) -> Result<CelBool>)
}

fn matches(this: &CelString<'_>, re: &CelString<'_>) -> Result<CelBool, ExecutionError> {
    let regex = compiled(re.inner()).map_err(|err| ExecutionError::FunctionError {
        function: "matches".to_string(),
        message: format!("'{}' not a valid regex:\n{err}", re.inner()),
    })?;
    Ok(CelBool::from(regex.is_match(this.inner())))
}

fn compiled(pattern: &str) -> Result<Regex, regex::Error> {
    let mut cache = COMPILED.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(regex) = cache.get(pattern) {
        return Ok(regex.clone());
    }
    let regex = Regex::new(pattern)?;
    if cache.len() < MAX_CACHED {
        cache.insert(pattern.to_string(), regex.clone());
    }
    Ok(regex)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use cel::{Context, Value};

    use super::*;

    fn eval(expr: &str) -> Result<Value, ExecutionError> {
        let mut env = Env::stdlib();
        register(&mut env).expect("matches is declared once");
        let program = env.compile(expr).expect("compiles");
        program.execute(&Context::with_env(Arc::new(env)))
    }

    #[test]
    fn matches_works_as_a_member_and_as_a_function() {
        assert_eq!(eval("'foobar'.matches('^[a-z]*$')"), Ok(Value::Bool(true)));
        assert_eq!(eval("matches('foo1', '^[a-z]*$')"), Ok(Value::Bool(false)));
        assert_eq!(
            eval("['ab', 'c1'].all(s, s.matches('^[a-z]+$'))"),
            Ok(Value::Bool(false))
        );
    }

    #[test]
    fn a_bad_pattern_is_an_evaluation_error_naming_it() {
        let Err(ExecutionError::FunctionError { function, message }) = eval("'x'.matches('(x')")
        else {
            panic!("a bad pattern must fail");
        };
        assert_eq!(function, "matches");
        assert!(message.starts_with("'(x' not a valid regex"), "{message}");
    }

    #[test]
    fn a_pattern_is_compiled_once_and_the_cache_is_bounded() {
        let pattern = "^cached-once-[0-9]+$";
        let first = compiled(pattern).expect("valid");
        let second = compiled(pattern).expect("valid");
        // regex::Regex shares its compiled program between clones: same pattern, one program.
        assert!(first.is_match("cached-once-1") && second.is_match("cached-once-2"));
        assert!(COMPILED
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains_key(pattern));
        for i in 0..(2 * MAX_CACHED) {
            compiled(&format!("^overflow-{i}$")).expect("valid");
        }
        assert!(
            COMPILED
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .len()
                <= MAX_CACHED
        );
        assert!(compiled(&format!("^overflow-{}$", 2 * MAX_CACHED - 1))
            .expect("still compiled past the bound")
            .is_match(&format!("overflow-{}", 2 * MAX_CACHED - 1)));
    }
}
