//! Per-organization policy snapshots, merged from configuration and the policy store.
//!
//! The request path calls [`PolicyRegistry::snapshot`]: a read lock and an `Arc` clone, no
//! I/O. Writers rebuild one organization's snapshot after a change ([`PolicyRegistry::reload`])
//! and swap it in whole, so an evaluation always sees one consistent rule set.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};

use gateway_types::ids::OrgId;
use gateway_types::model::StoredPolicy;
use gateway_types::store::{OrganizationStore, PolicyStore};

use super::rule::{Effect, InvalidPolicy, PolicyRule, Problem};
use super::snapshot::PolicySnapshot;
use crate::error::AuthError;

/// The policy snapshots of every organization.
#[derive(Debug)]
pub struct PolicyRegistry {
    default_effect: Effect,
    /// Rules declared in configuration, by organization slug.
    declared: BTreeMap<String, Vec<PolicyRule>>,
    snapshots: RwLock<HashMap<OrgId, Arc<PolicySnapshot>>>,
    empty: Arc<PolicySnapshot>,
}

impl PolicyRegistry {
    /// A registry with `default_effect` and the rules declared in configuration (by slug).
    ///
    /// # Errors
    /// The declared rules of an organization do not form a valid snapshot.
    pub fn new(
        default_effect: Effect,
        declared: BTreeMap<String, Vec<PolicyRule>>,
    ) -> Result<Self, InvalidPolicy> {
        for rules in declared.values() {
            PolicySnapshot::new(rules.clone(), default_effect)?;
        }
        let empty = Arc::new(PolicySnapshot::new(Vec::new(), default_effect)?);
        Ok(Self {
            default_effect,
            declared,
            snapshots: RwLock::new(HashMap::new()),
            empty,
        })
    }

    /// The organization's current snapshot (the default-only one when it has no rules).
    #[must_use]
    pub fn snapshot(&self, org: OrgId) -> Arc<PolicySnapshot> {
        let map = self
            .snapshots
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        map.get(&org).cloned().unwrap_or_else(|| self.empty.clone())
    }

    /// The effect when no rule applies.
    #[must_use]
    pub fn default_effect(&self) -> Effect {
        self.default_effect
    }

    /// The rules declared in configuration for an organization slug.
    #[must_use]
    pub fn declared(&self, slug: &str) -> &[PolicyRule] {
        self.declared.get(slug).map_or(&[], Vec::as_slice)
    }

    /// Checks that `candidate` can join the organization's rule set (as a new rule, or
    /// replacing the stored rule with the same id), without changing anything.
    ///
    /// # Errors
    /// Every problem of the resulting rule set.
    pub fn check_candidate(
        &self,
        slug: &str,
        stored: &[StoredPolicy],
        candidate: &PolicyRule,
    ) -> Result<(), InvalidPolicy> {
        candidate.validate()?;
        let mut rules = self.declared(slug).to_vec();
        rules.extend(
            stored
                .iter()
                .filter(|p| p.id.to_string() != candidate.id)
                .filter_map(|p| stored_rule(p).ok()),
        );
        rules.push(candidate.clone());
        PolicySnapshot::new(rules, self.default_effect).map(|_| ())
    }

    /// Rebuilds one organization's snapshot from its declared rules and `stored` rules.
    /// A stored rule that no longer parses is skipped with a warning rather than taking the
    /// organization's whole policy down (stored rules are validated on write).
    pub fn reload(&self, org: OrgId, slug: &str, stored: &[StoredPolicy]) {
        let mut rules = self.declared.get(slug).cloned().unwrap_or_default();
        for p in stored {
            match stored_rule(p) {
                Ok(rule) => rules.push(rule),
                Err(err) => {
                    tracing::warn!(org.id = %org, policy.id = %p.id, error = %err, "stored policy rule skipped")
                }
            }
        }
        let snapshot = PolicySnapshot::new(rules.clone(), self.default_effect).or_else(|err| {
            tracing::warn!(org.id = %org, error = %err, "policy set invalid; keeping declared rules only");
            PolicySnapshot::new(
                self.declared.get(slug).cloned().unwrap_or_default(),
                self.default_effect,
            )
        });
        if let Ok(snapshot) = snapshot {
            let mut map = self
                .snapshots
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            map.insert(org, Arc::new(snapshot));
        }
    }

    /// Loads every organization's snapshot.
    ///
    /// # Errors
    /// A store failure.
    pub async fn load_all(
        &self,
        orgs: &dyn OrganizationStore,
        policies: &dyn PolicyStore,
    ) -> Result<(), AuthError> {
        let all = policies.list_all().await?;
        for org in orgs.list().await? {
            let stored: Vec<StoredPolicy> = all.iter().filter(|p| p.org_id == org.id).cloned().collect();
            self.reload(org.id, &org.slug, &stored);
        }
        Ok(())
    }

    /// Reloads one organization from the stores.
    ///
    /// # Errors
    /// A store failure.
    pub async fn refresh(
        &self,
        org: OrgId,
        orgs: &dyn OrganizationStore,
        policies: &dyn PolicyStore,
    ) -> Result<(), AuthError> {
        let Some(o) = orgs.get(org).await? else {
            let mut map = self
                .snapshots
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            map.remove(&org);
            return Ok(());
        };
        let stored = policies.list(org).await?;
        self.reload(org, &o.slug, &stored);
        Ok(())
    }
}

/// The engine's rule for a stored policy: its document, with the row's id, name and flag.
///
/// # Errors
/// The document is not a rule.
pub fn stored_rule(p: &StoredPolicy) -> Result<PolicyRule, InvalidPolicy> {
    let mut rule: PolicyRule = serde_json::from_value(p.rule.clone()).map_err(|e| InvalidPolicy {
        problems: vec![Problem {
            path: String::new(),
            message: e.to_string(),
        }],
    })?;
    rule.id = p.id.to_string();
    rule.name.clone_from(&p.name);
    rule.enabled = p.enabled;
    Ok(rule)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{Action, PolicyRequest, SubjectFacts, Target};
    use chrono::Utc;
    use gateway_types::ids::PolicyId;
    use gateway_types::model::{RecordSource, Role};
    use serde_json::json;

    fn rule(v: serde_json::Value) -> PolicyRule {
        serde_json::from_value(v).unwrap()
    }

    fn stored(org: OrgId, name: &str, doc: serde_json::Value, enabled: bool) -> StoredPolicy {
        StoredPolicy {
            id: PolicyId::new(),
            org_id: org,
            name: name.into(),
            rule: doc,
            enabled,
            source: RecordSource::Api,
            created_at: Utc::now(),
            updated_at: Utc::now(),
        }
    }

    fn call(tool: &str) -> PolicyRequest {
        PolicyRequest::new(
            SubjectFacts::role(Role::User),
            Action::Call,
            Target::item(None, "srv", crate::policy::ItemKind::Tool, tool),
        )
        .with_arguments(json!({}))
    }

    #[test]
    fn merges_declared_and_stored_rules_and_swaps_snapshots() {
        let declared = rule(json!({"id":"cfg-1","name":"no-shell","effect":"deny",
            "resources":[{"kind":"tool","name":"shell*"}],"actions":["call"]}));
        let reg = PolicyRegistry::new(Effect::Allow, [("acme".to_owned(), vec![declared])].into()).unwrap();
        let org = OrgId::new();
        assert!(
            reg.snapshot(org).evaluate(&call("shell_exec")).allowed,
            "not loaded yet: default"
        );

        let env = stored(
            org,
            "no-env",
            json!({"id":"x","name":"x","effect":"deny",
            "resources":[{"kind":"tool","name":"get-env"}],"actions":["call"]}),
            true,
        );
        let broken = stored(org, "broken", json!({"effect":"sometimes"}), true);
        let off = stored(
            org,
            "off",
            json!({"id":"y","name":"y","effect":"deny","actions":["call"]}),
            false,
        );
        reg.reload(org, "acme", &[env.clone(), broken, off]);

        let snap = reg.snapshot(org);
        let d = snap.evaluate(&call("shell_exec"));
        assert!(!d.allowed);
        assert_eq!(d.reason, "denied by policy 'no-shell'");
        let d = snap.evaluate(&call("get-env"));
        assert!(!d.allowed);
        assert_eq!(
            d.rule.map(|r| r.id),
            Some(env.id.to_string()),
            "the row's id, not the document's"
        );
        assert!(
            snap.evaluate(&call("echo")).allowed,
            "disabled and broken rules do not apply"
        );

        reg.reload(org, "acme", &[]);
        assert!(
            reg.snapshot(org).evaluate(&call("get-env")).allowed,
            "deleted rule gone"
        );
        assert!(
            !reg.snapshot(org).evaluate(&call("shell_exec")).allowed,
            "declared rule stays"
        );
    }

    #[test]
    fn invalid_declared_rules_are_refused() {
        let bad = rule(json!({"id":"b","name":"b","effect":"deny","actions":["call"],
            "conditions":{"client_ips":["300.0.0.0/8"]}}));
        assert!(PolicyRegistry::new(Effect::Allow, [("acme".to_owned(), vec![bad])].into()).is_err());
    }
}
