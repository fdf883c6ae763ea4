//! The `CORS` filter on the data plane: preflight answers and the fields of actual responses.
//!
//! Which origins are allowed is the snapshot's decision ([`Cors::allows_origin`]); this module
//! writes the fields the Gateway API spec asks for. The allowed origin is always echoed (never
//! `*`), which is right with and without credentials, and `Vary: Origin` tells caches so.

use http::header::{
    ACCESS_CONTROL_ALLOW_CREDENTIALS, ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS,
    ACCESS_CONTROL_ALLOW_ORIGIN, ACCESS_CONTROL_EXPOSE_HEADERS, ACCESS_CONTROL_MAX_AGE,
    ACCESS_CONTROL_REQUEST_HEADERS, ACCESS_CONTROL_REQUEST_METHOD, CONTENT_LENGTH, ORIGIN, VARY,
};
use http::{HeaderName, HeaderValue, Method};
use pingora_error::Result;
use pingora_http::{RequestHeader, ResponseHeader};
use sluice_controller::snapshot::{Allowed, Cors};

/// What a request is to a `CORS` filter.
#[derive(Debug)]
pub enum CorsRequest {
    /// No `Origin` field, or one the filter does not allow (and not a preflight): proxied
    /// untouched, its response gets no CORS fields.
    Plain,
    /// `OPTIONS` with `Origin` and `Access-Control-Request-Method`: answered by Sluice with
    /// this response, never proxied (a refused origin gets the answer without CORS fields).
    Preflight(Box<ResponseHeader>),
    /// A request from an allowed origin: proxied, and its response gets the CORS fields for
    /// this `Origin` value ([`add_response_fields`]).
    Allowed(HeaderValue),
}

/// Sorts `req` for `cors`, building the preflight answer when it is one.
pub fn classify(cors: &Cors, req: &RequestHeader) -> Result<CorsRequest> {
    let Some(origin) = req.headers.get(ORIGIN) else {
        return Ok(CorsRequest::Plain);
    };
    let allowed = origin.to_str().is_ok_and(|o| cors.allows_origin(o));
    let requested_method = req.headers.get(ACCESS_CONTROL_REQUEST_METHOD);
    if req.method == Method::OPTIONS {
        if let Some(method) = requested_method {
            let origin = allowed.then_some(origin);
            return Ok(CorsRequest::Preflight(Box::new(preflight(
                cors, origin, method, req,
            )?)));
        }
    }
    Ok(match allowed {
        true => CorsRequest::Allowed(origin.clone()),
        false => CorsRequest::Plain,
    })
}

/// `200` with no body; the CORS fields only when `origin` (the allowed `Origin`) is given.
fn preflight(
    cors: &Cors,
    origin: Option<&HeaderValue>,
    method: &HeaderValue,
    req: &RequestHeader,
) -> Result<ResponseHeader> {
    let mut resp = ResponseHeader::build(200, Some(8))?;
    resp.insert_header(CONTENT_LENGTH, "0")?;
    resp.insert_header(VARY, "Origin")?;
    let Some(origin) = origin else {
        return Ok(resp);
    };
    resp.insert_header(ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone())?;
    if cors.allow_credentials {
        resp.insert_header(ACCESS_CONTROL_ALLOW_CREDENTIALS, "true")?;
    }
    // `*` is echoed as what was asked for: never wrong, and required with credentials.
    match &cors.allow_methods {
        Allowed::Any => resp.insert_header(ACCESS_CONTROL_ALLOW_METHODS, method.clone())?,
        Allowed::Only(list) if !list.is_empty() => resp.insert_header(
            ACCESS_CONTROL_ALLOW_METHODS,
            join(list.iter().map(Method::as_str)),
        )?,
        Allowed::Only(_) => {}
    }
    match (
        &cors.allow_headers,
        req.headers.get(ACCESS_CONTROL_REQUEST_HEADERS),
    ) {
        (Allowed::Any, Some(asked)) => {
            resp.insert_header(ACCESS_CONTROL_ALLOW_HEADERS, asked.clone())?
        }
        (Allowed::Any, None) => {}
        (Allowed::Only(list), _) if !list.is_empty() => resp.insert_header(
            ACCESS_CONTROL_ALLOW_HEADERS,
            join(list.iter().map(HeaderName::as_str)),
        )?,
        (Allowed::Only(_), _) => {}
    }
    if let Some(exposed) = exposed(cors, None) {
        resp.insert_header(ACCESS_CONTROL_EXPOSE_HEADERS, exposed)?;
    }
    resp.insert_header(ACCESS_CONTROL_MAX_AGE, cors.max_age)?;
    Ok(resp)
}

/// The fields of a response to an allowed cross-origin request. They replace any the backend
/// sent, so the client never sees two answers.
pub fn add_response_fields(
    cors: &Cors,
    origin: &HeaderValue,
    resp: &mut ResponseHeader,
) -> Result<()> {
    resp.insert_header(ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone())?;
    if cors.allow_credentials {
        resp.insert_header(ACCESS_CONTROL_ALLOW_CREDENTIALS, "true")?;
    }
    if let Some(exposed) = exposed(cors, Some(resp)) {
        resp.insert_header(ACCESS_CONTROL_EXPOSE_HEADERS, exposed)?;
    }
    resp.append_header(VARY, "Origin")?;
    Ok(())
}

/// `Access-Control-Expose-Headers`: the list, or `*`. With credentials a browser reads `*` as a
/// header name, so the response's own field names are listed instead (none on a preflight).
fn exposed(cors: &Cors, resp: Option<&ResponseHeader>) -> Option<String> {
    match (&cors.expose_headers, cors.allow_credentials, resp) {
        (Allowed::Only(list), _, _) if !list.is_empty() => {
            Some(join(list.iter().map(HeaderName::as_str)))
        }
        (Allowed::Only(_), _, _) => None,
        (Allowed::Any, false, _) => Some("*".to_string()),
        (Allowed::Any, true, None) => None,
        (Allowed::Any, true, Some(resp)) => {
            let names = join(resp.headers.keys().map(HeaderName::as_str));
            (!names.is_empty()).then_some(names)
        }
    }
}

fn join<'a>(items: impl Iterator<Item = &'a str>) -> String {
    items.collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests;
