//! Kopium derives `Default` on structs but not on enums; a struct holding an enum needs one.
//! Each default is the enum's first variant, as in the crates.io gateway-api crate.

use super::backendtlspolicies::BackendTlsPolicyValidationSubjectAltNamesType;
use super::grpcroutes::{GrpcRouteRulesBackendRefsFiltersType, GrpcRouteRulesFiltersType};
use super::httproutes::{
    HttpRouteRulesBackendRefsFiltersExternalAuthProtocol,
    HttpRouteRulesBackendRefsFiltersRequestRedirectPathType, HttpRouteRulesBackendRefsFiltersType,
    HttpRouteRulesBackendRefsFiltersUrlRewritePathType, HttpRouteRulesFiltersExternalAuthProtocol,
    HttpRouteRulesFiltersRequestRedirectPathType, HttpRouteRulesFiltersType,
    HttpRouteRulesFiltersUrlRewritePathType,
};

impl Default for HttpRouteRulesBackendRefsFiltersExternalAuthProtocol {
    fn default() -> Self {
        HttpRouteRulesBackendRefsFiltersExternalAuthProtocol::Http
    }
}

impl Default for HttpRouteRulesBackendRefsFiltersRequestRedirectPathType {
    fn default() -> Self {
        HttpRouteRulesBackendRefsFiltersRequestRedirectPathType::ReplaceFullPath
    }
}

impl Default for HttpRouteRulesBackendRefsFiltersType {
    fn default() -> Self {
        HttpRouteRulesBackendRefsFiltersType::RequestHeaderModifier
    }
}

impl Default for HttpRouteRulesBackendRefsFiltersUrlRewritePathType {
    fn default() -> Self {
        HttpRouteRulesBackendRefsFiltersUrlRewritePathType::ReplaceFullPath
    }
}

impl Default for HttpRouteRulesFiltersExternalAuthProtocol {
    fn default() -> Self {
        HttpRouteRulesFiltersExternalAuthProtocol::Http
    }
}

impl Default for HttpRouteRulesFiltersRequestRedirectPathType {
    fn default() -> Self {
        HttpRouteRulesFiltersRequestRedirectPathType::ReplaceFullPath
    }
}

impl Default for HttpRouteRulesFiltersType {
    fn default() -> Self {
        HttpRouteRulesFiltersType::RequestHeaderModifier
    }
}

impl Default for HttpRouteRulesFiltersUrlRewritePathType {
    fn default() -> Self {
        HttpRouteRulesFiltersUrlRewritePathType::ReplaceFullPath
    }
}

impl Default for GrpcRouteRulesBackendRefsFiltersType {
    fn default() -> Self {
        GrpcRouteRulesBackendRefsFiltersType::ResponseHeaderModifier
    }
}

impl Default for GrpcRouteRulesFiltersType {
    fn default() -> Self {
        GrpcRouteRulesFiltersType::ResponseHeaderModifier
    }
}

impl Default for BackendTlsPolicyValidationSubjectAltNamesType {
    fn default() -> Self {
        BackendTlsPolicyValidationSubjectAltNamesType::Hostname
    }
}
