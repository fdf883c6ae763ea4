//! HTTPRoute filters -> validated snapshot `Filter`s (header names/values parsed, mirrors resolved).

use gateway_api::apis::experimental::httproutes::{
    HttpRouteRulesBackendRefsFilters, HttpRouteRulesFilters,
    HttpRouteRulesFiltersRequestHeaderModifier as HeaderMod,
    HttpRouteRulesFiltersRequestMirror as MirrorSpec,
    HttpRouteRulesFiltersRequestRedirect as RedirectSpec,
    HttpRouteRulesFiltersRequestRedirectPathType as RedirectPathType,
    HttpRouteRulesFiltersRequestRedirectScheme as Scheme, HttpRouteRulesFiltersType as Type,
    HttpRouteRulesFiltersUrlRewrite as RewriteSpec,
    HttpRouteRulesFiltersUrlRewritePathType as RewritePathType,
};
use http::{HeaderName, HeaderValue};

use super::backend::{BackendRef, Resolver, Unresolved};
use crate::snapshot::{
    Filter, Fraction, HeaderModifier, Mirror, PathModifier, Redirect, UrlRewrite,
};

/// A backendRef filter has the same shape and serialization as a rule filter; converting it
/// lets one validator serve both levels.
pub(super) fn from_backend_filter(
    f: &HttpRouteRulesBackendRefsFilters,
) -> Result<HttpRouteRulesFilters, String> {
    serde_json::to_value(f)
        .and_then(serde_json::from_value)
        .map_err(|e| format!("backendRef filter: {e}"))
}

/// `Err` makes the whole rule invalid (UnsupportedValue); `Ok(None)` drops a mirror whose
/// backend did not resolve (recorded in `unresolved` for the route's ResolvedRefs).
pub(super) fn compile(
    f: &HttpRouteRulesFilters,
    route_namespace: &str,
    resolver: &mut Resolver<'_, '_>,
    unresolved: &mut Vec<Unresolved>,
) -> Result<Option<Filter>, String> {
    let missing = |field: &str| format!("filter type {:?} needs the `{field}` field", f.r#type);
    Ok(Some(match f.r#type {
        Type::RequestHeaderModifier => {
            let m = f
                .request_header_modifier
                .as_ref()
                .ok_or_else(|| missing("requestHeaderModifier"))?;
            Filter::RequestHeaders(header_modifier(m)?)
        }
        Type::ResponseHeaderModifier => {
            let m = f
                .response_header_modifier
                .as_ref()
                .ok_or_else(|| missing("responseHeaderModifier"))?;
            // Same shape as the request modifier; reuse its validation.
            let as_request: HeaderMod = serde_json::to_value(m)
                .and_then(serde_json::from_value)
                .map_err(|e| format!("responseHeaderModifier: {e}"))?;
            Filter::ResponseHeaders(header_modifier(&as_request)?)
        }
        Type::RequestRedirect => {
            let r = f
                .request_redirect
                .as_ref()
                .ok_or_else(|| missing("requestRedirect"))?;
            Filter::Redirect(redirect(r)?)
        }
        Type::UrlRewrite => {
            let r = f
                .url_rewrite
                .as_ref()
                .ok_or_else(|| missing("urlRewrite"))?;
            Filter::UrlRewrite(rewrite(r)?)
        }
        Type::RequestMirror => {
            let m = f
                .request_mirror
                .as_ref()
                .ok_or_else(|| missing("requestMirror"))?;
            match mirror(m, route_namespace, resolver)? {
                Ok(m) => Filter::Mirror(m),
                Err(u) => {
                    unresolved.push(u);
                    return Ok(None);
                }
            }
        }
        Type::ExtensionRef => return Err("ExtensionRef filters are not supported".into()),
        Type::Cors => return Err("CORS filters are not supported".into()),
        Type::ExternalAuth => return Err("ExternalAuth filters are not supported".into()),
    }))
}

fn header_modifier(m: &HeaderMod) -> Result<HeaderModifier, String> {
    let name = |n: &str| {
        HeaderName::from_bytes(n.as_bytes())
            .map_err(|_| format!("{n:?} is not a valid header name"))
    };
    let value = |v: &str| {
        HeaderValue::from_str(v).map_err(|_| format!("{v:?} is not a valid header value"))
    };
    let mut out = HeaderModifier::default();
    for h in m.set.iter().flatten() {
        out.set.push((name(&h.name)?, value(&h.value)?));
    }
    for h in m.add.iter().flatten() {
        out.add.push((name(&h.name)?, value(&h.value)?));
    }
    for h in m.remove.iter().flatten() {
        out.remove.push(name(h)?);
    }
    Ok(out)
}

fn redirect(r: &RedirectSpec) -> Result<Redirect, String> {
    let status_code = match r.status_code.unwrap_or(302) {
        c @ (301 | 302 | 303 | 307 | 308) => c as u16,
        c => return Err(format!("redirect statusCode {c} is not supported")),
    };
    let path = match &r.path {
        None => None,
        Some(p) => Some(match p.r#type {
            RedirectPathType::ReplaceFullPath => PathModifier::ReplaceFullPath(
                p.replace_full_path
                    .clone()
                    .ok_or("redirect path ReplaceFullPath needs replaceFullPath")?,
            ),
            RedirectPathType::ReplacePrefixMatch => PathModifier::ReplacePrefixMatch(
                p.replace_prefix_match
                    .clone()
                    .ok_or("redirect path ReplacePrefixMatch needs replacePrefixMatch")?,
            ),
        }),
    };
    check_hostname(r.hostname.as_deref())?;
    Ok(Redirect {
        scheme: r.scheme.as_ref().map(|s| match s {
            Scheme::Http => "http".to_string(),
            Scheme::Https => "https".to_string(),
        }),
        hostname: r.hostname.clone(),
        path,
        port: match r.port {
            Some(p) => Some(
                u16::try_from(p)
                    .ok()
                    .filter(|p| *p != 0)
                    .ok_or_else(|| format!("redirect port {p} is not valid"))?,
            ),
            None => None,
        },
        status_code,
    })
}

fn check_hostname(h: Option<&str>) -> Result<(), String> {
    match h {
        Some(h) if super::hostname::parse(h, false).is_none() => {
            Err(format!("{h:?} is not a valid hostname"))
        }
        _ => Ok(()),
    }
}

fn rewrite(r: &RewriteSpec) -> Result<UrlRewrite, String> {
    let path = match &r.path {
        None => None,
        Some(p) => Some(match p.r#type {
            RewritePathType::ReplaceFullPath => PathModifier::ReplaceFullPath(
                p.replace_full_path
                    .clone()
                    .ok_or("urlRewrite path ReplaceFullPath needs replaceFullPath")?,
            ),
            RewritePathType::ReplacePrefixMatch => PathModifier::ReplacePrefixMatch(
                p.replace_prefix_match
                    .clone()
                    .ok_or("urlRewrite path ReplacePrefixMatch needs replacePrefixMatch")?,
            ),
        }),
    };
    check_hostname(r.hostname.as_deref())?;
    Ok(UrlRewrite {
        hostname: r.hostname.clone(),
        path,
    })
}

/// The outer `Err` invalidates the rule (bad fraction); the inner one is an unresolved backend.
fn mirror(
    m: &MirrorSpec,
    route_namespace: &str,
    resolver: &mut Resolver<'_, '_>,
) -> Result<Result<Mirror, Unresolved>, String> {
    let fraction = match (&m.percent, &m.fraction) {
        (Some(_), Some(_)) => return Err("requestMirror sets both percent and fraction".into()),
        (Some(p), None) => {
            let p = u32::try_from(*p)
                .ok()
                .filter(|p| *p <= 100)
                .ok_or_else(|| format!("requestMirror percent {p} is not in 0..=100"))?;
            Fraction {
                numerator: p,
                denominator: 100,
            }
        }
        (None, Some(f)) => {
            let denominator = f.denominator.unwrap_or(100);
            match (u32::try_from(f.numerator), u32::try_from(denominator)) {
                (Ok(n), Ok(d)) if d > 0 && n <= d => Fraction {
                    numerator: n,
                    denominator: d,
                },
                _ => {
                    return Err(format!(
                        "requestMirror fraction {}/{denominator} is not valid",
                        f.numerator
                    ))
                }
            }
        }
        (None, None) => Fraction::ALL,
    };
    let b = &m.backend_ref;
    let r = BackendRef {
        group: b.group.as_deref(),
        kind: b.kind.as_deref(),
        name: &b.name,
        namespace: b.namespace.as_deref(),
        port: b.port,
    };
    Ok(resolver
        .resolve(route_namespace, &r)
        .map(|backend| Mirror { backend, fraction }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use gateway_api::apis::experimental::httproutes::{
        HttpRouteRulesFiltersRequestHeaderModifierSet as Set,
        HttpRouteRulesFiltersRequestMirrorBackendRef, HttpRouteRulesFiltersRequestMirrorFraction,
    };

    fn mirror_spec(percent: Option<i32>, fraction: Option<(i32, Option<i32>)>) -> MirrorSpec {
        MirrorSpec {
            backend_ref: HttpRouteRulesFiltersRequestMirrorBackendRef {
                name: "missing".into(),
                port: Some(80),
                ..Default::default()
            },
            percent,
            fraction: fraction.map(|(numerator, denominator)| {
                HttpRouteRulesFiltersRequestMirrorFraction {
                    numerator,
                    denominator,
                }
            }),
        }
    }

    fn with_resolver<T>(f: impl FnOnce(&mut Resolver<'_, '_>) -> T) -> T {
        let resources = crate::resources::Resources::default();
        let index = super::super::index::Index::new(&resources);
        let mut resolver = Resolver::new(&index);
        f(&mut resolver)
    }

    #[test]
    fn mirror_fraction_validation() {
        with_resolver(|r| {
            assert!(mirror(&mirror_spec(Some(101), None), "ns", r).is_err());
            assert!(mirror(&mirror_spec(None, Some((3, Some(2)))), "ns", r).is_err());
            assert!(mirror(&mirror_spec(None, Some((1, Some(0)))), "ns", r).is_err());
            assert!(mirror(&mirror_spec(Some(1), Some((1, None))), "ns", r).is_err());
            // Valid fraction, but the backend does not exist: unresolved, not invalid.
            let unresolved = mirror(&mirror_spec(None, Some((1, None))), "ns", r).expect("valid");
            assert_eq!(unresolved.err().map(|u| u.reason), Some("BackendNotFound"));
        });
    }

    #[test]
    fn invalid_header_names_and_values_are_errors() {
        let m = HeaderMod {
            set: Some(vec![Set {
                name: "bad name".into(),
                value: "v".into(),
            }]),
            ..Default::default()
        };
        assert!(header_modifier(&m).is_err());
        let m = HeaderMod {
            set: Some(vec![Set {
                name: "x-ok".into(),
                value: "line\nbreak".into(),
            }]),
            ..Default::default()
        };
        assert!(header_modifier(&m).is_err());
    }

    #[test]
    fn redirect_defaults_to_302_and_rejects_other_codes() {
        let r = redirect(&RedirectSpec::default()).expect("valid");
        assert_eq!(r.status_code, 302);
        let bad = RedirectSpec {
            status_code: Some(200),
            ..Default::default()
        };
        assert!(redirect(&bad).is_err());
    }
}
