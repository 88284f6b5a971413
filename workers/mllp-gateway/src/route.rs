//! Routing by MSH-9: `TYPE^TRIGGER=QUEUE` entries, first match wins.

use std::str::FromStr;

/// One route. `None` in a pattern part is `*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub message_type: Option<String>,
    pub trigger: Option<String>,
    pub queue: String,
}

impl FromStr for Route {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (pattern, queue) = s
            .split_once('=')
            .ok_or("expected TYPE^TRIGGER=QUEUE (e.g. ADT^*=hl7-inbound)")?;
        let queue = queue.trim();
        if queue.is_empty() {
            return Err("no QUEUE after '='".into());
        }
        let (ty, trigger) = pattern.trim().split_once('^').unwrap_or((pattern, "*"));
        let part = |p: &str, what: &str, len: std::ops::RangeInclusive<usize>| {
            let p = p.trim();
            if p == "*" {
                return Ok(None);
            }
            if !len.contains(&p.len()) || !p.bytes().all(|b| b.is_ascii_alphanumeric()) {
                return Err(format!(
                    "{what} {p:?} is not `*` or {len:?} letters or digits"
                ));
            }
            Ok(Some(p.to_ascii_uppercase()))
        };
        Ok(Self {
            message_type: part(ty, "message type", 3..=3)?,
            trigger: part(trigger, "trigger event", 1..=3)?,
            queue: queue.to_string(),
        })
    }
}

/// Why a message has no route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoRoute {
    /// No route names this message type (table 0357: 200).
    Type,
    /// Routes name the type, none this trigger (table 0357: 201).
    Trigger,
}

/// The routes in order.
#[derive(Debug, Clone)]
pub struct Router {
    routes: Vec<Route>,
}

impl Router {
    pub fn new(routes: Vec<Route>) -> Self {
        Self { routes }
    }

    /// The queue for MSH-9.1 / MSH-9.2 (compared case-insensitively).
    pub fn route(&self, message_type: &str, trigger: &str) -> Result<&str, NoRoute> {
        let matches =
            |p: &Option<String>, v: &str| p.as_ref().is_none_or(|p| p.eq_ignore_ascii_case(v));
        let mut type_known = false;
        for r in &self.routes {
            if matches(&r.message_type, message_type) {
                type_known = true;
                if matches(&r.trigger, trigger) {
                    return Ok(&r.queue);
                }
            }
        }
        Err(if type_known {
            NoRoute::Trigger
        } else {
            NoRoute::Type
        })
    }

    /// Every queue a route names, each once, in order.
    pub fn queues(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for r in &self.routes {
            if !out.contains(&r.queue.as_str()) {
                out.push(&r.queue);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn router(routes: &[&str]) -> Router {
        Router::new(routes.iter().map(|r| r.parse().unwrap()).collect())
    }

    #[test]
    fn first_match_wins_and_wildcards_match_any_part() {
        let r = router(&["ADT^A08=updates", "ADT^*=adt", "ORU=results", "*^*=rest"]);
        assert_eq!(r.route("ADT", "A08"), Ok("updates"));
        assert_eq!(r.route("adt", "a01"), Ok("adt"));
        assert_eq!(r.route("ORU", "R01"), Ok("results"));
        assert_eq!(r.route("SIU", "S12"), Ok("rest"));
        assert_eq!(r.queues(), ["updates", "adt", "results", "rest"]);
    }

    #[test]
    fn an_unrouted_type_and_an_unrouted_trigger_are_told_apart() {
        let r = router(&["ADT^A01=q", "ADT^A04=q"]);
        assert_eq!(r.route("ADT", "A01"), Ok("q"));
        assert_eq!(r.route("ADT", "A08"), Err(NoRoute::Trigger));
        assert_eq!(r.route("ORU", "R01"), Err(NoRoute::Type));
        assert_eq!(r.route("", ""), Err(NoRoute::Type));
        assert_eq!(r.queues(), ["q"]);
    }

    #[test]
    fn malformed_routes_are_refused() {
        for bad in ["ADT^A01", "ADT^A01=", "AD^*=q", "A$T^*=q", "ADT^A0101=q"] {
            assert!(bad.parse::<Route>().is_err(), "{bad}");
        }
    }
}
