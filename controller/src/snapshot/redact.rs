//! Header values of sensitive names hidden while a snapshot is rendered for people (`/config`),
//! never in golden files or anywhere translation's output is compared.

use std::cell::Cell;

/// What a hidden value is printed as.
pub const REDACTED: &str = "<redacted>";

thread_local! {
    /// Serialization is synchronous, so a flag on the rendering thread reaches every nested
    /// `HeaderModifier` without a second, redacting copy of the snapshot's types.
    static REDACTING: Cell<bool> = const { Cell::new(false) };
}

/// Runs `render` with the values of sensitive headers (see [`is_sensitive`]) printed as
/// [`REDACTED`]; the previous mode is restored afterwards, even if `render` panics.
pub fn redacting_header_values<T>(render: impl FnOnce() -> T) -> T {
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            REDACTING.with(|r| r.set(self.0));
        }
    }
    let _restore = Restore(REDACTING.with(|r| r.replace(true)));
    render()
}

/// Credentials by name: the ones HTTP defines, and any name that says it holds a token, secret,
/// key or password (`x-api-key`, `x-auth-token`, ...). Header names are lower case.
pub fn is_sensitive(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    matches!(
        name.as_str(),
        "authorization" | "proxy-authorization" | "cookie" | "set-cookie"
    ) || ["token", "secret", "key", "password"]
        .iter()
        .any(|word| name.contains(word))
}

/// The value as rendered now: itself, or [`REDACTED`] inside [`redacting_header_values`].
pub(super) fn shown<'v>(name: &str, value: &'v str) -> &'v str {
    if REDACTING.with(Cell::get) && is_sensitive(name) {
        REDACTED
    } else {
        value
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_and_names_that_say_so_are_sensitive() {
        for name in [
            "authorization",
            "Proxy-Authorization",
            "cookie",
            "set-cookie",
            "x-api-key",
            "X-Auth-Token",
            "client-secret",
            "db-password",
        ] {
            assert!(is_sensitive(name), "{name}");
        }
        for name in ["x-shadow", "content-type", "x-request-id"] {
            assert!(!is_sensitive(name), "{name}");
        }
    }

    #[test]
    fn values_are_hidden_only_while_redacting() {
        assert_eq!(shown("authorization", "Bearer t"), "Bearer t");
        let inside = redacting_header_values(|| {
            (shown("authorization", "Bearer t"), shown("x-shadow", "1"))
        });
        assert_eq!(inside, (REDACTED, "1"));
        assert_eq!(shown("authorization", "Bearer t"), "Bearer t");
    }
}
