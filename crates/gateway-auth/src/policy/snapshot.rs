//! The immutable, compiled rule set of one organization and the evaluation function.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::request::PolicyRequest;
use super::rule::{Action, CompiledRule, Effect, InvalidPolicy, PolicyRule, Problem};

/// A rule set as written in configuration: the default effect and the rules.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicySet {
    /// The effect when no rule applies (omitted: `allow`).
    #[serde(default)]
    pub default_effect: Effect,
    /// The rules, in order (the order decides which rule a decision names, never the outcome).
    #[serde(default)]
    pub rules: Vec<PolicyRule>,
}

/// The rule that decided, as shown in decisions and dry runs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleRef {
    /// Rule id.
    pub id: String,
    /// Rule name.
    pub name: String,
}

/// The answer of the policy engine.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    /// Whether the request may proceed.
    pub allowed: bool,
    /// The deciding effect (`allow` exactly when `allowed`).
    pub effect: Effect,
    /// The deciding rule; `None` when the snapshot's default effect decided.
    pub rule: Option<RuleRef>,
    /// Client-readable explanation, e.g. `denied by policy 'no-env-dump'`. It names at most the
    /// deciding rule and nothing of any other rule.
    pub reason: String,
}

/// How the arguments of a request take part in a decision.
#[derive(Clone, Copy, Debug)]
enum Args<'a> {
    /// Not known (listing, dry runs): a deny rule with argument conditions does not apply, an
    /// allow rule with argument conditions does (some arguments might satisfy it).
    Unknown,
    /// The action has no arguments (`read`, `admin`): rules with argument conditions do not
    /// apply.
    NotApplicable,
    /// The request's arguments.
    Known(&'a Value),
}

/// The outcome of one pass over the rules for one action.
#[derive(Clone, Copy, Debug)]
struct Outcome {
    effect: Effect,
    rule: Option<usize>,
}

/// The compiled, immutable policy of one organization. Build it when the rules change (from
/// configuration and the `policies` table), share it as `Arc<PolicySnapshot>` and swap the
/// `Arc` on change; evaluation never touches storage or the network.
#[derive(Clone, Debug)]
pub struct PolicySnapshot {
    default_effect: Effect,
    rules: Vec<PolicyRule>,
    compiled: Vec<CompiledRule>,
}

impl Default for PolicySnapshot {
    fn default() -> Self {
        Self::allow_all()
    }
}

impl PolicySnapshot {
    /// No rules, default `allow`: the policy of an organization that has none.
    #[must_use]
    pub fn allow_all() -> Self {
        Self {
            default_effect: Effect::Allow,
            rules: Vec::new(),
            compiled: Vec::new(),
        }
    }

    /// Whether every request is allowed without looking at it: no rule is in force and the
    /// default is `allow`. Lets the hot path skip building a request (and copying arguments).
    #[must_use]
    pub fn allows_everything(&self) -> bool {
        self.compiled.is_empty() && self.default_effect == Effect::Allow
    }

    /// Validates and compiles `rules` (enabled or not) with `default_effect` deciding when no
    /// rule applies. Disabled rules are kept for [`PolicySnapshot::rules`] but never applied.
    ///
    /// # Errors
    /// [`InvalidPolicy`] with every problem of every rule (paths start with `rules[i].`), and
    /// duplicate ids.
    pub fn new(rules: Vec<PolicyRule>, default_effect: Effect) -> Result<Self, InvalidPolicy> {
        let mut problems = Vec::new();
        let mut compiled = Vec::with_capacity(rules.len());
        for (i, rule) in rules.iter().enumerate() {
            if let Some(first) = rules.iter().take(i).position(|r| r.id == rule.id) {
                problems.push(Problem {
                    path: format!("rules[{i}].id"),
                    message: format!("duplicate id {:?} (also rules[{first}])", rule.id),
                });
            }
            match rule.compile_at(format!("rules[{i}]")) {
                Ok(c) if rule.enabled => compiled.push(c),
                Ok(_) => {}
                Err(e) => problems.extend(e.problems),
            }
        }
        if !problems.is_empty() {
            return Err(InvalidPolicy { problems });
        }
        Ok(Self {
            default_effect,
            rules,
            compiled,
        })
    }

    /// [`PolicySnapshot::new`] from a configuration rule set.
    ///
    /// # Errors
    /// As [`PolicySnapshot::new`].
    pub fn from_set(set: PolicySet) -> Result<Self, InvalidPolicy> {
        Self::new(set.rules, set.default_effect)
    }

    /// The effect when no rule applies.
    #[must_use]
    pub const fn default_effect(&self) -> Effect {
        self.default_effect
    }

    /// The rules as given, disabled ones included.
    #[must_use]
    pub fn rules(&self) -> &[PolicyRule] {
        &self.rules
    }

    /// Decides `request`.
    ///
    /// - `list`: whether the target item is shown — exactly [`PolicySnapshot::visible`].
    /// - `call`, `read`, `get`: the `list` gate (evaluated without arguments, exactly as for
    ///   listing) must allow, and then the action itself. With `arguments: None` for `call` or
    ///   `get` the answer is "allowed for some arguments" (dry runs); real calls pass `Some`.
    /// - `admin`: the `admin` rules alone; argument conditions never apply.
    #[must_use]
    pub fn evaluate(&self, request: &PolicyRequest) -> Decision {
        match request.action {
            Action::List => self.visible(request),
            Action::Admin => self.decision(self.decide(Action::Admin, request, Args::NotApplicable)),
            action @ (Action::Call | Action::Read | Action::Get) => {
                let args = match (&request.arguments, action.takes_arguments()) {
                    (_, false) => Args::NotApplicable,
                    (None, true) => Args::Unknown,
                    (Some(v), true) => Args::Known(v),
                };
                self.gated(request, action, args)
            }
        }
    }

    /// Whether the target item is shown in `tools/list`, `resources/list` (and templates) or
    /// `prompts/list`, whatever `request.action` and `request.arguments` say: the `list` gate
    /// allows, and the item's use action (`call`, `read`, `get` by kind) is allowed for some
    /// arguments. Hence an item is listed if any use of it can be allowed, and a use is allowed
    /// only if the item is listed. Without an item, the `list` gate alone decides.
    #[must_use]
    pub fn visible(&self, request: &PolicyRequest) -> Decision {
        match &request.target.item {
            None => self.decision(self.decide(Action::List, request, Args::Unknown)),
            Some(item) => {
                let action = item.kind.use_action();
                let args = if action.takes_arguments() {
                    Args::Unknown
                } else {
                    Args::NotApplicable
                };
                self.gated(request, action, args)
            }
        }
    }

    /// The `list` gate, then `action`.
    fn gated(&self, request: &PolicyRequest, action: Action, args: Args<'_>) -> Decision {
        let list = self.decide(Action::List, request, Args::Unknown);
        if list.effect == Effect::Deny {
            return self.decision(list);
        }
        let used = self.decide(action, request, args);
        if used.effect == Effect::Deny {
            return self.decision(used);
        }
        self.decision(Outcome {
            effect: Effect::Allow,
            rule: used.rule.or(list.rule),
        })
    }

    /// One pass over the rules for `action`: the first applicable deny rule wins; otherwise the
    /// first applicable allow rule; otherwise the default effect.
    fn decide(&self, action: Action, request: &PolicyRequest, args: Args<'_>) -> Outcome {
        let mut allow = None;
        for (i, rule) in self.compiled.iter().enumerate() {
            if !rule.has_action(action)
                || !rule.matches_ip(request.client_ip)
                || !rule.matches_subject(&request.subject)
                || !rule.matches_target(&request.target)
            {
                continue;
            }
            let applies = !rule.has_argument_conditions()
                || match args {
                    Args::Unknown => rule.effect == Effect::Allow,
                    Args::NotApplicable => false,
                    Args::Known(v) => rule.matches_arguments(v),
                };
            if !applies {
                continue;
            }
            match rule.effect {
                Effect::Deny => {
                    return Outcome {
                        effect: Effect::Deny,
                        rule: Some(i),
                    };
                }
                Effect::Allow => {
                    allow.get_or_insert(i);
                }
            }
        }
        match allow {
            Some(i) => Outcome {
                effect: Effect::Allow,
                rule: Some(i),
            },
            None => Outcome {
                effect: self.default_effect,
                rule: None,
            },
        }
    }

    fn decision(&self, outcome: Outcome) -> Decision {
        let rule = outcome.rule.and_then(|i| self.compiled.get(i));
        let reason = match (outcome.effect, rule) {
            (Effect::Deny, Some(r)) => format!("denied by policy '{}'", r.name),
            (Effect::Deny, None) => "denied: no policy allows this".to_owned(),
            (Effect::Allow, Some(r)) => format!("allowed by policy '{}'", r.name),
            (Effect::Allow, None) => "allowed: no policy applies".to_owned(),
        };
        Decision {
            allowed: outcome.effect == Effect::Allow,
            effect: outcome.effect,
            rule: rule.map(|r| RuleRef {
                id: r.id.clone(),
                name: r.name.clone(),
            }),
            reason,
        }
    }
}
