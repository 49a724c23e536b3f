//! Audiences: which authorizers a route that names none may ask for whose clients, and
//! the warnings about credentials that open routes of two audiences or routes whose
//! callers cannot take an allow for nobody.
//!
//! Takes: the routes as written and the registered dialects' declarations
//! ([`Dialect::audience`](crate::dialect::Dialect::audience),
//! [`Dialect::anonymous`](crate::dialect::Dialect::anonymous)). Returns: each
//! authorizer's bound audiences, and warnings for `verdict check`. Must never: leave an
//! authorizer that routes scoped to one audience name open to another audience's callers
//! through a route that names no authorizers (a Cesbo viewer's `?token=` would open the
//! web application's routes), or fail to warn where a route names it for another.

use crate::dialect::{self, DIALECTS};
use crate::policy::{Access, Policy, RouteSettings};
use crate::request::{Anonymous, Audiences, Caller};

/// The audiences a route serves: those of its dialects, or every one.
pub(super) fn audiences_of(dialects: Option<&[String]>) -> Audiences {
    match dialects {
        Some(names) => names
            .iter()
            .filter_map(|name| dialect::by_name(name))
            .map(|d| d.audience())
            .collect(),
        None => Audiences::every(),
    }
}

/// The audiences `authorizer` is bound to: those of every route scoped to dialects that
/// names it. Empty when no such route does: it serves every caller.
pub(super) fn binding(authorizer: &str, routes: &[RouteSettings]) -> Audiences {
    routes
        .iter()
        .filter(|r| {
            r.authorizers
                .as_ref()
                .is_some_and(|names| names.0.iter().any(|n| n == authorizer))
        })
        .filter_map(|r| r.dialects.as_ref())
        .fold(Audiences::default(), |bound, dialects| {
            bound.union(audiences_of(Some(&dialects.0)))
        })
}

/// Warnings about credentials and audiences: a route that names an authorizer bound to
/// other audiences than it serves (one credential then opens routes of two audiences),
/// and an `identify` route that callers reading every allow as "authenticated" can reach
/// (they get a deny for nobody, which is rarely what its author meant).
pub(super) fn warnings(policy: &Policy, bound: &[(&str, Audiences)]) -> Vec<String> {
    let mut out = Vec::new();
    for (index, (name, audiences)) in bound.iter().enumerate() {
        if audiences.is_empty() {
            continue;
        }
        let wider = policy.routes().find(|r| {
            r.asks_authorizers()
                && !r.implicit_chain
                && r.chain.contains(&index)
                && !audiences_of(r.dialects.as_deref()).is_subset(*audiences)
        });
        if let Some(route) = wider {
            out.push(format!(
                "authorizers.{name}: one credential opens routes of two audiences: routes for {} name it, and so does route {} ({}); give each audience an authorizer of its own, or scope the route with dialects",
                audiences.describe(),
                route.name,
                audiences_of(route.dialects.as_deref()).describe()
            ));
        }
    }
    for route in policy.routes() {
        if route.access != Access::Identify {
            continue;
        }
        let strict: Vec<&str> = DIALECTS
            .iter()
            .filter(|d| {
                route
                    .dialects
                    .as_ref()
                    .is_none_or(|names| names.iter().any(|n| n == d.name()))
            })
            .filter(|d| d.anonymous(&Caller::default()) == Anonymous::Never)
            .map(|d| d.name())
            .collect();
        if !strict.is_empty() {
            out.push(format!(
                "route {}: access = \"identify\" also answers {}, whose callers read every allow as authenticated: they are refused unless a credential is verified; give them routes of their own, or scope this one with dialects",
                route.name,
                strict.join(", ")
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::Audience;
    use crate::settings::StringList;

    fn route(dialects: Option<&[&str]>, authorizers: Option<&[&str]>) -> RouteSettings {
        let list = |items: &[&str]| StringList(items.iter().map(|s| s.to_string()).collect());
        RouteSettings {
            dialects: dialects.map(list),
            authorizers: authorizers.map(list),
            ..RouteSettings::default_route(
                Access::Authenticated,
                None,
                crate::policy::OnError::Deny,
            )
        }
    }

    #[test]
    fn an_authorizer_is_bound_to_the_audiences_of_the_scoped_routes_that_name_it() {
        let routes = [
            route(Some(&["cesbo"]), Some(&["viewers"])),
            route(Some(&["emqx", "emqx-authn", "mqtt"]), Some(&["devices"])),
            route(None, Some(&["viewers", "sso"])),
        ];
        let viewers = binding("viewers", &routes);
        assert!(viewers.contains(Audience::Viewers) && !viewers.contains(Audience::Web));
        assert_eq!(
            binding("devices", &routes),
            [Audience::MqttClients].into_iter().collect()
        );
        assert!(
            binding("sso", &routes).is_empty(),
            "named only by an unscoped route"
        );
    }
}
