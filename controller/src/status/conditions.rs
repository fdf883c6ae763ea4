//! Every condition type and reason Sluice writes, and which condition may carry which reason.
//!
//! Producers (translate, the unbound-port correction, the provisioner and the status writer's
//! overlay) take their strings from here, so `docs/status-reasons.md` can be checked against one
//! list (the test at the bottom) instead of against literals spread over the tree.

/// Defines string constants and `ALL`, so no constant can be left out of the documentation check.
macro_rules! names {
    ($($(#[$doc:meta])* $name:ident = $value:literal;)*) => {
        $($(#[$doc])* pub const $name: &str = $value;)*
        /// Every constant of this module.
        pub const ALL: &[&str] = &[$($name),*];
    };
}

/// Condition types.
pub mod types {
    names! {
        /// Whether the controller accepts the object: GatewayClass, Gateway, Listener, route
        /// parent.
        ACCEPTED = "Accepted";
        /// Whether the configuration is in the data plane (Gateway, Listener).
        PROGRAMMED = "Programmed";
        /// Whether references resolved: a Listener's certificateRefs and route kinds, a route's
        /// backendRefs.
        RESOLVED_REFS = "ResolvedRefs";
        /// True when a Listener conflicts with another on the same socket.
        CONFLICTED = "Conflicted";
        /// True when some rules of a route were dropped as invalid.
        PARTIALLY_INVALID = "PartiallyInvalid";
        /// True (only present) while a Gateway's client-certificate validation admits clients
        /// without a valid certificate (`AllowInsecureFallback`).
        INSECURE_FRONTEND_VALIDATION_MODE = "InsecureFrontendValidationMode";
    }
}

/// Condition reasons, as the Gateway API spec names them.
pub mod reasons {
    names! {
        /// `Accepted: True`.
        ACCEPTED = "Accepted";
        /// `Programmed: True`.
        PROGRAMMED = "Programmed";
        /// Gateway `InsecureFrontendValidationMode: True`: some port validates client
        /// certificates with `AllowInsecureFallback`.
        CONFIGURATION_CHANGED = "ConfigurationChanged";
        /// `ResolvedRefs: True`.
        RESOLVED_REFS = "ResolvedRefs";
        /// A Listener's `Conflicted: False`.
        NO_CONFLICTS = "NoConflicts";
        /// The object, or what it depends on, is not valid; also a Gateway's `Programmed` while it
        /// is not accepted.
        INVALID = "Invalid";
        /// `Accepted: False`: the GatewayClass `parametersRef` or a Gateway's
        /// `infrastructure.parametersRef` is unusable.
        INVALID_PARAMETERS = "InvalidParameters";
        /// Gateway `Accepted`: some listener is invalid (still True when one is valid).
        LISTENERS_NOT_VALID = "ListenersNotValid";
        /// Gateway `Accepted: False`: a `spec.addresses` entry Sluice cannot serve.
        UNSUPPORTED_ADDRESS = "UnsupportedAddress";
        /// Gateway `Programmed: False`: a requested address cannot be used.
        ADDRESS_NOT_USABLE = "AddressNotUsable";
        /// Gateway `Programmed: False`: the address pool is exhausted, or the data-plane Service
        /// has
        /// no address yet.
        ADDRESS_NOT_ASSIGNED = "AddressNotAssigned";
        /// A cluster Gateway whose data plane has no available pod yet.
        PENDING = "Pending";
        /// A Listener protocol other than HTTP and HTTPS, or a backend `appProtocol` Sluice cannot
        /// speak.
        UNSUPPORTED_PROTOCOL = "UnsupportedProtocol";
        /// The listener's address and port could not be bound.
        PORT_UNAVAILABLE = "PortUnavailable";
        /// A value Sluice does not support: a listener field, a route hostname or rule, a
        /// backendRef
        /// port.
        UNSUPPORTED_VALUE = "UnsupportedValue";
        /// Listener `ResolvedRefs: False`: `allowedRoutes.kinds` names a kind Sluice does not
        /// serve.
        INVALID_ROUTE_KINDS = "InvalidRouteKinds";
        /// Listener `ResolvedRefs: False`: a missing or unusable `kubernetes.io/tls` Secret.
        INVALID_CERTIFICATE_REF = "InvalidCertificateRef";
        /// Listener `ResolvedRefs: False` (client validation) and BackendTLSPolicy
        /// `ResolvedRefs: False`: a `caCertificateRefs` entry names a missing ConfigMap, or one
        /// without a usable PEM `ca.crt`.
        INVALID_CA_CERTIFICATE_REF = "InvalidCACertificateRef";
        /// Listener `ResolvedRefs: False`: a `caCertificateRefs` entry of a kind other than
        /// ConfigMap.
        INVALID_CA_CERTIFICATE_KIND = "InvalidCACertificateKind";
        /// Listener `Accepted: False` (client validation) and BackendTLSPolicy `Accepted: False`:
        /// no usable CA certificate to verify the peer with.
        NO_VALID_CA_CERTIFICATE = "NoValidCACertificate";
        /// `ResolvedRefs: False`: a cross-namespace reference without a ReferenceGrant allowing it.
        REF_NOT_PERMITTED = "RefNotPermitted";
        /// Listener `Conflicted: True`: an older Gateway serves the socket with another protocol.
        PROTOCOL_CONFLICT = "ProtocolConflict";
        /// Listener `Conflicted: True`: an older Gateway serves the same hostname on the socket.
        HOSTNAME_CONFLICT = "HostnameConflict";
        /// Route parent `Accepted: False`: the parentRef names no listener or port of the Gateway.
        NO_MATCHING_PARENT = "NoMatchingParent";
        /// Route parent `Accepted: False`: no listener's `allowedRoutes` admits the route.
        NOT_ALLOWED_BY_LISTENERS = "NotAllowedByListeners";
        /// Route parent `Accepted: False`: no route hostname intersects a listener's.
        NO_MATCHING_LISTENER_HOSTNAME = "NoMatchingListenerHostname";
        /// Route `ResolvedRefs: False`: a backendRef names a Service that does not exist.
        BACKEND_NOT_FOUND = "BackendNotFound";
        /// Route `ResolvedRefs: False`: a backendRef of a kind other than Service; also a
        /// BackendTLSPolicy `caCertificateRef` of a kind other than ConfigMap.
        INVALID_KIND = "InvalidKind";
        /// ListenerSet `Accepted`/`Programmed: False`: its Gateway's `allowedListeners` does not
        /// admit its namespace.
        NOT_ALLOWED = "NotAllowed";
        /// ListenerSet `Accepted: False`: its Gateway is not accepted.
        PARENT_NOT_ACCEPTED = "ParentNotAccepted";
        /// ListenerSet `Programmed: False`: its Gateway is not programmed.
        PARENT_NOT_PROGRAMMED = "ParentNotProgrammed";
        /// BackendTLSPolicy and MirrorPolicy `Accepted: False`: an older policy targets the same
        /// Service port (route rule).
        CONFLICTED = "Conflicted";
        /// MirrorPolicy `Accepted: False`: a targetRef names no route, or no rule of its route.
        TARGET_NOT_FOUND = "TargetNotFound";
        /// Gateway `ResolvedRefs: False`: `tls.backend.clientCertificateRef` names no usable
        /// `kubernetes.io/tls` Secret.
        INVALID_CLIENT_CERTIFICATE_REF = "InvalidClientCertificateRef";
    }
}

/// The reasons one condition of one object may carry.
#[derive(Debug)]
pub struct ConditionReasons {
    /// As the documentation's table names it: `GatewayClass`, `Gateway`, `Listener`,
    /// `Route parent` (HTTPRoute, GRPCRoute and TLSRoute alike).
    pub object: &'static str,
    /// The condition type, one of [`types`].
    pub condition: &'static str,
    /// Every reason the condition may carry, each one of [`reasons`].
    pub reasons: &'static [&'static str],
}

use self::reasons as r;
use self::types as t;

/// Every condition Sluice sets and the reasons any producer gives it.
pub const CONDITIONS: &[ConditionReasons] = &[
    ConditionReasons {
        object: "GatewayClass",
        condition: t::ACCEPTED,
        reasons: &[r::ACCEPTED, r::INVALID_PARAMETERS],
    },
    ConditionReasons {
        object: "Gateway",
        condition: t::ACCEPTED,
        reasons: &[
            r::ACCEPTED,
            r::LISTENERS_NOT_VALID,
            r::INVALID_PARAMETERS,
            r::UNSUPPORTED_ADDRESS,
            r::INVALID,
        ],
    },
    ConditionReasons {
        object: "Gateway",
        condition: t::PROGRAMMED,
        reasons: &[
            r::PROGRAMMED,
            r::ADDRESS_NOT_USABLE,
            r::ADDRESS_NOT_ASSIGNED,
            r::PENDING,
            r::PORT_UNAVAILABLE,
            r::INVALID,
        ],
    },
    ConditionReasons {
        object: "Gateway",
        condition: t::INSECURE_FRONTEND_VALIDATION_MODE,
        reasons: &[r::CONFIGURATION_CHANGED],
    },
    ConditionReasons {
        object: "Gateway",
        condition: t::RESOLVED_REFS,
        reasons: &[
            r::RESOLVED_REFS,
            r::INVALID_CLIENT_CERTIFICATE_REF,
            r::REF_NOT_PERMITTED,
        ],
    },
    ConditionReasons {
        object: "Listener",
        condition: t::ACCEPTED,
        reasons: &[
            r::ACCEPTED,
            r::UNSUPPORTED_PROTOCOL,
            r::PORT_UNAVAILABLE,
            r::UNSUPPORTED_VALUE,
            r::PROTOCOL_CONFLICT,
            r::HOSTNAME_CONFLICT,
            r::NO_VALID_CA_CERTIFICATE,
        ],
    },
    ConditionReasons {
        object: "Listener",
        condition: t::RESOLVED_REFS,
        reasons: &[
            r::RESOLVED_REFS,
            r::INVALID_ROUTE_KINDS,
            r::INVALID_CERTIFICATE_REF,
            r::REF_NOT_PERMITTED,
            r::INVALID_CA_CERTIFICATE_REF,
            r::INVALID_CA_CERTIFICATE_KIND,
        ],
    },
    ConditionReasons {
        object: "Listener",
        condition: t::CONFLICTED,
        reasons: &[r::NO_CONFLICTS, r::PROTOCOL_CONFLICT, r::HOSTNAME_CONFLICT],
    },
    ConditionReasons {
        object: "Listener",
        condition: t::PROGRAMMED,
        reasons: &[
            r::PROGRAMMED,
            r::PORT_UNAVAILABLE,
            r::INVALID,
            r::PROTOCOL_CONFLICT,
            r::HOSTNAME_CONFLICT,
        ],
    },
    ConditionReasons {
        object: "ListenerSet",
        condition: t::ACCEPTED,
        reasons: &[
            r::ACCEPTED,
            r::NOT_ALLOWED,
            r::PARENT_NOT_ACCEPTED,
            r::LISTENERS_NOT_VALID,
            r::INVALID,
        ],
    },
    ConditionReasons {
        object: "ListenerSet",
        condition: t::PROGRAMMED,
        reasons: &[
            r::PROGRAMMED,
            r::NOT_ALLOWED,
            r::PARENT_NOT_ACCEPTED,
            r::LISTENERS_NOT_VALID,
            r::PARENT_NOT_PROGRAMMED,
            r::PORT_UNAVAILABLE,
            r::INVALID,
        ],
    },
    ConditionReasons {
        object: "Route parent",
        condition: t::ACCEPTED,
        reasons: &[
            r::ACCEPTED,
            r::NO_MATCHING_PARENT,
            r::NOT_ALLOWED_BY_LISTENERS,
            r::NO_MATCHING_LISTENER_HOSTNAME,
            r::UNSUPPORTED_VALUE,
        ],
    },
    ConditionReasons {
        object: "Route parent",
        condition: t::PARTIALLY_INVALID,
        reasons: &[r::UNSUPPORTED_VALUE],
    },
    ConditionReasons {
        object: "Route parent",
        condition: t::RESOLVED_REFS,
        reasons: &[
            r::RESOLVED_REFS,
            r::BACKEND_NOT_FOUND,
            r::REF_NOT_PERMITTED,
            r::INVALID_KIND,
            r::UNSUPPORTED_PROTOCOL,
            r::UNSUPPORTED_VALUE,
        ],
    },
    ConditionReasons {
        object: "BackendTLSPolicy ancestor",
        condition: t::ACCEPTED,
        reasons: &[
            r::ACCEPTED,
            r::CONFLICTED,
            r::NO_VALID_CA_CERTIFICATE,
            r::INVALID,
        ],
    },
    ConditionReasons {
        object: "MirrorPolicy ancestor",
        condition: t::ACCEPTED,
        reasons: &[r::ACCEPTED, r::CONFLICTED, r::TARGET_NOT_FOUND, r::INVALID],
    },
    ConditionReasons {
        object: "BackendTLSPolicy ancestor",
        condition: t::RESOLVED_REFS,
        reasons: &[
            r::RESOLVED_REFS,
            r::INVALID_CA_CERTIFICATE_REF,
            r::INVALID_KIND,
        ],
    },
];

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use super::*;

    /// `(object, condition)` -> reasons, from the table rows of `docs/status-reasons.md`. A row's
    /// first cell is the object and the condition in backticks; the reasons are the backticked
    /// words in the second cell that look like reasons (CamelCase, so not `parametersRef`).
    fn documented() -> BTreeMap<(String, String), BTreeSet<String>> {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/status-reasons.md");
        let text = std::fs::read_to_string(path).expect("docs/status-reasons.md is readable");
        let mut out = BTreeMap::new();
        for line in text.lines() {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            let [_, first, second, _] = cells.as_slice() else {
                continue;
            };
            let Some((object, rest)) = first.split_once(" `") else {
                continue;
            };
            let condition = rest.trim_end_matches('`');
            if !types::ALL.contains(&condition) {
                continue;
            }
            let reasons = second
                .split('`')
                .skip(1)
                .step_by(2)
                .filter(|w| w.starts_with(|c: char| c.is_ascii_uppercase()))
                .filter(|w| w.chars().all(|c| c.is_ascii_alphabetic()))
                .map(str::to_string)
                .collect();
            out.insert((object.to_string(), condition.to_string()), reasons);
        }
        out
    }

    #[test]
    fn the_documented_reasons_are_the_ones_producers_use() {
        let declared: BTreeMap<(String, String), BTreeSet<String>> = CONDITIONS
            .iter()
            .map(|c| {
                let reasons = c.reasons.iter().map(|r| r.to_string()).collect();
                ((c.object.to_string(), c.condition.to_string()), reasons)
            })
            .collect();
        assert_eq!(
            documented(),
            declared,
            "docs/status-reasons.md and controller/src/status/conditions.rs disagree"
        );
    }

    #[test]
    fn every_reason_and_type_is_given_to_some_condition() {
        let used: BTreeSet<&str> = CONDITIONS.iter().flat_map(|c| c.reasons).copied().collect();
        for reason in reasons::ALL {
            assert!(
                used.contains(reason),
                "reason {reason} belongs to no condition"
            );
        }
        let types_used: BTreeSet<&str> = CONDITIONS.iter().map(|c| c.condition).collect();
        assert_eq!(types_used, types::ALL.iter().copied().collect());
    }
}
