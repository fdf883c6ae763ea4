//! HTTPRoute filters -> validated snapshot `Filter`s (header names/values parsed, mirrors resolved).

use gateway_api::apis::experimental::httproutes::{
    HttpRouteRulesBackendRefsFilters, HttpRouteRulesFilters, HttpRouteRulesFiltersCors as CorsSpec,
    HttpRouteRulesFiltersRequestHeaderModifier as HeaderMod,
    HttpRouteRulesFiltersRequestMirror as MirrorSpec,
    HttpRouteRulesFiltersRequestRedirect as RedirectSpec,
    HttpRouteRulesFiltersRequestRedirectPath as RedirectPath,
    HttpRouteRulesFiltersRequestRedirectPathType as RedirectPathType,
    HttpRouteRulesFiltersRequestRedirectScheme as Scheme, HttpRouteRulesFiltersType as Type,
    HttpRouteRulesFiltersUrlRewrite as RewriteSpec,
    HttpRouteRulesFiltersUrlRewritePath as RewritePath,
    HttpRouteRulesFiltersUrlRewritePathType as RewritePathType,
};
use http::{HeaderName, HeaderValue, Method};

use super::backend::{BackendRef, Resolver, UnresolvedRef};
use crate::snapshot::{
    Allowed, Cors, Filter, Fraction, HeaderModifier, Mirror, OriginPattern, PathModifier, Redirect,
    UrlRewrite,
};
use crate::status::conditions::reasons;

/// Why a filter cannot be compiled: the rule holding it is dropped. Errors of serde_json are
/// part of the message a status shows, so they are not also a `#[source]`.
#[derive(Debug, thiserror::Error)]
pub(super) enum FilterError {
    #[error("backendRef filter: {0}")]
    BackendFilter(serde_json::Error),
    #[error("filter type {filter:?} needs the `{field}` field")]
    MissingField { filter: Type, field: &'static str },
    #[error("responseHeaderModifier: {0}")]
    ResponseHeaderModifier(serde_json::Error),
    #[error("{0} filters are not supported")]
    Unsupported(&'static str),
    #[error("{0:?} is not a valid header name")]
    HeaderName(String),
    #[error("{0:?} is not a valid header value")]
    HeaderValue(String),
    #[error("redirect statusCode {0} is not supported")]
    RedirectStatusCode(i64),
    /// `filter` is `redirect` or `urlRewrite`.
    #[error("{filter} path {path_type} needs {field}")]
    MissingPathValue {
        filter: &'static str,
        path_type: &'static str,
        field: &'static str,
    },
    #[error("{0:?} is not a valid hostname")]
    Hostname(String),
    #[error("redirect port {0} is not valid")]
    RedirectPort(i32),
    #[error("requestMirror sets both percent and fraction")]
    MirrorPercentAndFraction,
    #[error("requestMirror percent {0} is not in 0..=100")]
    MirrorPercent(i32),
    #[error("requestMirror fraction {numerator}/{denominator} is not valid")]
    MirrorFraction { numerator: i32, denominator: i32 },
    #[error("cors allowOrigins {0:?} is not an origin")]
    CorsOrigin(String),
    #[error("cors allowMethods {0:?} is not a method")]
    CorsMethod(String),
    #[error("cors {field} cannot hold '*' alongside other values")]
    CorsWildcardMixed { field: &'static str },
    #[error("cors maxAge {0} is not a positive number of seconds")]
    CorsMaxAge(i32),
}

// === impl FilterError ===

impl FilterError {
    /// The route condition reason: unsupported filters and bad values alike are values Sluice
    /// cannot use.
    pub(super) fn reason(&self) -> &'static str {
        reasons::UNSUPPORTED_VALUE
    }
}

/// A backendRef filter has the same shape and serialization as a rule filter; converting it
/// lets one validator serve both levels.
pub(super) fn from_backend_filter(
    f: &HttpRouteRulesBackendRefsFilters,
) -> Result<HttpRouteRulesFilters, FilterError> {
    serde_json::to_value(f)
        .and_then(serde_json::from_value)
        .map_err(FilterError::BackendFilter)
}

/// `Err` makes the whole rule invalid (UnsupportedValue); `Ok(None)` drops a mirror whose
/// backend did not resolve (recorded in `unresolved` for the route's ResolvedRefs).
pub(super) fn compile(
    f: &HttpRouteRulesFilters,
    route_namespace: &str,
    resolver: &mut Resolver<'_, '_>,
    unresolved: &mut Vec<UnresolvedRef>,
) -> Result<Option<Filter>, FilterError> {
    Ok(Some(match f.r#type {
        Type::RequestHeaderModifier => {
            let m = required(f, &f.request_header_modifier, "requestHeaderModifier")?;
            Filter::RequestHeaders(header_modifier(m)?)
        }
        Type::ResponseHeaderModifier => {
            let m = required(f, &f.response_header_modifier, "responseHeaderModifier")?;
            // Same shape as the request modifier; reuse its validation.
            let as_request: HeaderMod = serde_json::to_value(m)
                .and_then(serde_json::from_value)
                .map_err(FilterError::ResponseHeaderModifier)?;
            Filter::ResponseHeaders(header_modifier(&as_request)?)
        }
        Type::RequestRedirect => {
            let r = required(f, &f.request_redirect, "requestRedirect")?;
            Filter::Redirect(redirect(r)?)
        }
        Type::UrlRewrite => {
            let r = required(f, &f.url_rewrite, "urlRewrite")?;
            Filter::UrlRewrite(rewrite(r)?)
        }
        Type::RequestMirror => {
            let m = required(f, &f.request_mirror, "requestMirror")?;
            match mirror(m, route_namespace, resolver)? {
                Ok(m) => Filter::Mirror(m),
                Err(u) => {
                    unresolved.push(u);
                    return Ok(None);
                }
            }
        }
        Type::ExtensionRef => return Err(FilterError::Unsupported("ExtensionRef")),
        Type::Cors => Filter::Cors(cors(required(f, &f.cors, "cors")?)?),
        Type::ExternalAuth => return Err(FilterError::Unsupported("ExternalAuth")),
    }))
}

/// The field named by the filter's type, which must be set.
fn required<'a, T>(
    f: &HttpRouteRulesFilters,
    value: &'a Option<T>,
    field: &'static str,
) -> Result<&'a T, FilterError> {
    value.as_ref().ok_or_else(|| FilterError::MissingField {
        filter: f.r#type.clone(),
        field,
    })
}

pub(super) fn header_modifier(m: &HeaderMod) -> Result<HeaderModifier, FilterError> {
    let name = |n: &str| {
        HeaderName::from_bytes(n.as_bytes()).map_err(|_| FilterError::HeaderName(n.to_string()))
    };
    let value =
        |v: &str| HeaderValue::from_str(v).map_err(|_| FilterError::HeaderValue(v.to_string()));
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

fn redirect(r: &RedirectSpec) -> Result<Redirect, FilterError> {
    let status_code = match r.status_code.unwrap_or(302) {
        c @ (301 | 302 | 303 | 307 | 308) => c as u16,
        c => return Err(FilterError::RedirectStatusCode(c)),
    };
    let path = path_modifier("redirect", r.path.as_ref().map(PathSpec::from))?;
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
                    .ok_or(FilterError::RedirectPort(p))?,
            ),
            None => None,
        },
        status_code,
    })
}

fn check_hostname(h: Option<&str>) -> Result<(), FilterError> {
    match h {
        Some(h) if super::hostname::parse(h, false).is_none() => {
            Err(FilterError::Hostname(h.to_string()))
        }
        _ => Ok(()),
    }
}

fn rewrite(r: &RewriteSpec) -> Result<UrlRewrite, FilterError> {
    let path = path_modifier("urlRewrite", r.path.as_ref().map(PathSpec::from))?;
    check_hostname(r.hostname.as_deref())?;
    Ok(UrlRewrite {
        hostname: r.hostname.clone(),
        path,
    })
}

/// A redirect's or a rewrite's path as written: the value its type asks for, if set.
enum PathSpec<'a> {
    ReplaceFullPath(Option<&'a String>),
    ReplacePrefixMatch(Option<&'a String>),
}

/// The generated redirect and rewrite path types differ only in name; one conversion serves both.
macro_rules! path_spec_from {
    ($($path:ty: $path_type:ident),+) => {$(
        impl<'a> From<&'a $path> for PathSpec<'a> {
            fn from(p: &'a $path) -> Self {
                match p.r#type {
                    $path_type::ReplaceFullPath => {
                        PathSpec::ReplaceFullPath(p.replace_full_path.as_ref())
                    }
                    $path_type::ReplacePrefixMatch => {
                        PathSpec::ReplacePrefixMatch(p.replace_prefix_match.as_ref())
                    }
                }
            }
        }
    )+};
}

path_spec_from!(RedirectPath: RedirectPathType, RewritePath: RewritePathType);

/// `filter` (`redirect` or `urlRewrite`) names the filter in the error.
fn path_modifier(
    filter: &'static str,
    path: Option<PathSpec<'_>>,
) -> Result<Option<PathModifier>, FilterError> {
    let missing = |path_type, field| FilterError::MissingPathValue {
        filter,
        path_type,
        field,
    };
    Ok(Some(match path {
        None => return Ok(None),
        Some(PathSpec::ReplaceFullPath(value)) => PathModifier::ReplaceFullPath(
            value
                .cloned()
                .ok_or_else(|| missing("ReplaceFullPath", "replaceFullPath"))?,
        ),
        Some(PathSpec::ReplacePrefixMatch(value)) => PathModifier::ReplacePrefixMatch(
            value
                .cloned()
                .ok_or_else(|| missing("ReplacePrefixMatch", "replacePrefixMatch"))?,
        ),
    }))
}

/// The spec's default `Access-Control-Max-Age`, in seconds.
const CORS_DEFAULT_MAX_AGE: u32 = 5;

/// The CRD's schema and CEL already hold these rules for the API server; a route from a file
/// reaches translate without them, so they are checked here too.
fn cors(c: &CorsSpec) -> Result<Cors, FilterError> {
    let allow_origins = c
        .allow_origins
        .iter()
        .flatten()
        .map(|o| OriginPattern::parse(o).ok_or_else(|| FilterError::CorsOrigin(o.clone())))
        .collect::<Result<Vec<_>, _>>()?;
    if allow_origins.len() > 1 && allow_origins.contains(&OriginPattern::Any) {
        return Err(FilterError::CorsWildcardMixed {
            field: "allowOrigins",
        });
    }
    let method = |m: &str| {
        Method::from_bytes(m.as_bytes()).map_err(|_| FilterError::CorsMethod(m.to_string()))
    };
    let header = |h: &str| {
        HeaderName::from_bytes(h.as_bytes()).map_err(|_| FilterError::HeaderName(h.into()))
    };
    let max_age = match c.max_age {
        None => CORS_DEFAULT_MAX_AGE,
        Some(s) => u32::try_from(s)
            .ok()
            .filter(|s| *s > 0)
            .ok_or(FilterError::CorsMaxAge(s))?,
    };
    Ok(Cors {
        allow_origins,
        allow_credentials: c.allow_credentials.unwrap_or(false),
        allow_methods: allowed("allowMethods", c.allow_methods.as_deref(), method)?,
        allow_headers: allowed("allowHeaders", c.allow_headers.as_deref(), header)?,
        expose_headers: allowed("exposeHeaders", c.expose_headers.as_deref(), header)?,
        max_age,
    })
}

/// A CORS list: `["*"]` is the wildcard, anything else a list of values `parse` accepts.
fn allowed<T>(
    field: &'static str,
    values: Option<&[String]>,
    parse: impl Fn(&str) -> Result<T, FilterError>,
) -> Result<Allowed<T>, FilterError> {
    let values = values.unwrap_or_default();
    if values.iter().any(|v| v == "*") {
        return match values.len() {
            1 => Ok(Allowed::Any),
            _ => Err(FilterError::CorsWildcardMixed { field }),
        };
    }
    values
        .iter()
        .map(|v| parse(v))
        .collect::<Result<_, _>>()
        .map(Allowed::Only)
}

/// The outer `Err` invalidates the rule (bad fraction); the inner one is an unresolved backend.
fn mirror(
    m: &MirrorSpec,
    route_namespace: &str,
    resolver: &mut Resolver<'_, '_>,
) -> Result<Result<Mirror, UnresolvedRef>, FilterError> {
    let fraction = match (&m.percent, &m.fraction) {
        (Some(_), Some(_)) => return Err(FilterError::MirrorPercentAndFraction),
        (Some(p), None) => {
            let p = u32::try_from(*p)
                .ok()
                .filter(|p| *p <= 100)
                .ok_or(FilterError::MirrorPercent(*p))?;
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
                    return Err(FilterError::MirrorFraction {
                        numerator: f.numerator,
                        denominator,
                    })
                }
            }
        }
        (None, None) => Fraction::ALL,
    };
    Ok(resolver
        .resolve(route_namespace, &BackendRef::from(&m.backend_ref))
        .map(|backend| Mirror {
            backend,
            fraction,
            policy: None,
        }))
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
            // 0/0 is not "never": a zero denominator invalidates the rule (docs/mirroring.md).
            assert!(mirror(&mirror_spec(None, Some((0, Some(0)))), "ns", r).is_err());
            assert!(mirror(&mirror_spec(Some(1), Some((1, None))), "ns", r).is_err());
            // Valid fraction, but the backend does not exist: unresolved, not invalid.
            let unresolved = mirror(&mirror_spec(None, Some((1, None))), "ns", r).expect("valid");
            assert_eq!(
                unresolved.err().map(|u| u.reason()),
                Some("BackendNotFound")
            );
        });
    }

    /// A modifier that sets one header.
    fn setting(name: &str, value: &str) -> HeaderMod {
        HeaderMod {
            set: Some(vec![Set {
                name: name.into(),
                value: value.into(),
            }]),
            ..Default::default()
        }
    }

    #[test]
    fn invalid_header_names_and_values_are_errors() {
        assert!(header_modifier(&setting("bad name", "v")).is_err());
        assert!(header_modifier(&setting("x-ok", "line\nbreak")).is_err());
    }

    fn cors_spec(origins: &[&str], methods: &[&str]) -> CorsSpec {
        let list = |v: &[&str]| Some(v.iter().map(|s| s.to_string()).collect());
        CorsSpec {
            allow_origins: list(origins),
            allow_methods: list(methods),
            ..Default::default()
        }
    }

    #[test]
    fn cors_defaults_max_age_to_five_seconds_and_parses_its_lists() {
        let c = cors(&cors_spec(&["https://*.bar.com"], &["GET", "OPTIONS"])).expect("valid");
        assert_eq!(c.max_age, 5);
        assert!(!c.allow_credentials);
        assert_eq!(
            c.allow_methods,
            Allowed::Only(vec![Method::GET, Method::OPTIONS])
        );
        assert_eq!(c.allow_headers, Allowed::Only(vec![]));
        assert!(c.allows_origin("https://a.b.bar.com"));
        let any = cors(&cors_spec(&["*"], &["*"])).expect("valid");
        assert_eq!(any.allow_origins, vec![OriginPattern::Any]);
        assert_eq!(any.allow_methods, Allowed::Any);
    }

    #[test]
    fn cors_refuses_what_the_crd_refuses() {
        assert!(cors(&cors_spec(&["*", "https://a.com"], &[])).is_err());
        assert!(cors(&cors_spec(&["https://a.com"], &["*", "GET"])).is_err());
        assert!(cors(&cors_spec(&["a.com"], &[])).is_err());
        assert!(cors(&cors_spec(&["https://a.com"], &["GE T"])).is_err());
        let zero_age = CorsSpec {
            max_age: Some(0),
            ..Default::default()
        };
        assert!(cors(&zero_age).is_err());
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
