//! Fault injection: rules that make matching vendor requests fail, slow down
//! or break on purpose, so a client's error paths can be tested. The rules
//! here only decide; the server applies the decision (`server::shaping`) and
//! the request's dialect renders any status in its own envelope.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use zipgate_api::rng::{fnv1a, splitmix64, SplitMix64};

use crate::jobs::JobFault;

/// One rule: which requests it matches, when it fires, what it does.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultRule {
    #[serde(default, rename = "match")]
    pub matching: FaultMatch,
    /// Fires on this many matching requests, then is spent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub times: Option<u64>,
    /// Lets this many matching requests through before firing.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub after: u64,
    /// Fires on a matching request with this chance (0–1), drawn from `seed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probability: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// Answer with this status instead of handling the request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub respond: Option<Respond>,
    /// Wait this long before answering.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay_ms: Option<u64>,
    /// Send the response body at no more than this many bytes per second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throttle_bytes_per_sec: Option<u64>,
    /// Break the connection after this much of the response body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cut: Option<Cut>,
    /// What happens to a job this request creates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<JobFault>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Every field given must match; `path` is a glob where `*` matches any run
/// of characters, `/` included.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultMatch {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dialect: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// A user's id or login, as the request's credentials identify it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Respond {
    pub status: u16,
    /// Replaces the vendor's default text where its envelope carries one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Added to (or replacing) the vendor's headers, e.g. `retry-after`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cut {
    pub after_bytes: u64,
    #[serde(default)]
    pub how: CutHow,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CutHow {
    /// The connection is reset (TCP RST).
    #[default]
    Reset,
    /// The connection is closed cleanly (FIN) with the body short of its framing.
    Close,
}

impl FaultRule {
    /// A rule for requests with this method and path glob.
    pub fn on(method: &str, path: &str) -> Self {
        FaultRule {
            matching: FaultMatch {
                method: Some(method.to_owned()),
                path: Some(path.to_owned()),
                ..FaultMatch::default()
            },
            ..FaultRule::default()
        }
    }

    pub fn dialect(mut self, dialect: &str) -> Self {
        self.matching.dialect = Some(dialect.to_owned());
        self
    }

    pub fn user(mut self, user: &str) -> Self {
        self.matching.user = Some(user.to_owned());
        self
    }

    pub fn times(mut self, n: u64) -> Self {
        self.times = Some(n);
        self
    }

    pub fn after(mut self, n: u64) -> Self {
        self.after = n;
        self
    }

    pub fn probability(mut self, p: f64, seed: u64) -> Self {
        self.probability = Some(p);
        self.seed = Some(seed);
        self
    }

    pub fn status(mut self, status: u16) -> Self {
        self.respond.get_or_insert_with(Respond::default).status = status;
        self
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.respond
            .get_or_insert_with(Respond::default)
            .headers
            .insert(name.to_owned(), value.to_owned());
        self
    }

    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay_ms = Some(delay.as_millis() as u64);
        self
    }

    pub fn throttle(mut self, bytes_per_sec: u64) -> Self {
        self.throttle_bytes_per_sec = Some(bytes_per_sec);
        self
    }

    pub fn cut_after(mut self, after_bytes: u64, how: CutHow) -> Self {
        self.cut = Some(Cut { after_bytes, how });
        self
    }

    pub fn job(mut self, fault: JobFault) -> Self {
        self.job = Some(fault);
        self
    }

    /// Why this rule cannot be used, if it cannot.
    pub fn check(&self) -> Result<(), RuleError> {
        let acts = self.respond.is_some()
            || self.delay_ms.is_some()
            || self.throttle_bytes_per_sec.is_some()
            || self.cut.is_some()
            || self.job.is_some();
        if !acts {
            return Err(RuleError::NoAction);
        }
        if let Some(respond) = &self.respond {
            if !(400..=599).contains(&respond.status) {
                return Err(RuleError::Status(respond.status));
            }
            for (name, value) in &respond.headers {
                http::HeaderName::from_bytes(name.as_bytes())
                    .map_err(|_| RuleError::HeaderName(name.clone()))?;
                http::HeaderValue::from_str(value)
                    .map_err(|_| RuleError::HeaderValue(name.clone()))?;
            }
        }
        if let Some(p) = self.probability {
            if !(0.0..=1.0).contains(&p) {
                return Err(RuleError::Probability(p));
            }
        }
        if self.throttle_bytes_per_sec == Some(0) {
            return Err(RuleError::ZeroThrottle);
        }
        if self.delay_ms.is_some_and(|ms| ms > MAX_DELAY_MS) {
            return Err(RuleError::Delay);
        }
        Ok(())
    }
}

/// The longest `delay_ms` a rule may ask for: ten minutes.
const MAX_DELAY_MS: u64 = 600_000;

/// Why a rule cannot be used; the text names the field, as the control
/// plane answers it.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum RuleError {
    #[error("a rule needs an action: respond, delay_ms, throttle_bytes_per_sec, cut or job")]
    NoAction,
    #[error("respond.status: {0} is not an error status (400–599)")]
    Status(u16),
    #[error("respond.headers: {0:?} is not a header name")]
    HeaderName(String),
    #[error("respond.headers.{0}: not a header value")]
    HeaderValue(String),
    #[error("probability: {0} is not between 0 and 1")]
    Probability(f64),
    #[error("throttle_bytes_per_sec: must be at least 1")]
    ZeroThrottle,
    #[error("delay_ms: at most {MAX_DELAY_MS} (ten minutes)")]
    Delay,
}

/// Rules from JSON: one rule, an array of rules, or `{"faults": [...]}` (the
/// shape `GET /_zipgate/faults` lists). Errors name the JSON path.
pub fn parse_rules(json: &serde_json::Value) -> Result<Vec<FaultRule>, String> {
    parse_rules_for(json, None)
}

/// [`parse_rules`], with `match.dialect` checked against the dialects
/// served (`dialects`; in any case, kept in lower case): a misspelt one
/// would never match, and a test would pass without its fault.
pub fn parse_rules_for(
    json: &serde_json::Value,
    dialects: Option<&[&str]>,
) -> Result<Vec<FaultRule>, String> {
    let (list, prefix) = match json {
        serde_json::Value::Array(items) => (items.clone(), "$"),
        serde_json::Value::Object(map) if map.len() == 1 && map.contains_key("faults") => {
            match &map["faults"] {
                serde_json::Value::Array(items) => (items.clone(), "$.faults"),
                _ => return Err("$.faults: expected an array of rules".into()),
            }
        }
        single => (vec![single.clone()], ""),
    };
    list.into_iter()
        .enumerate()
        .map(|(index, item)| {
            let at = if prefix.is_empty() {
                "$".to_owned()
            } else {
                format!("{prefix}[{index}]")
            };
            let rule: FaultRule = crate::strict_json::from_value(&item).map_err(|e| {
                let path = e.path().to_string();
                let path = if path == "." {
                    String::new()
                } else {
                    format!(".{path}")
                };
                format!("{at}{path}: {}", e.inner())
            })?;
            let mut rule = rule;
            rule.check().map_err(|e| format!("{at}: {e}"))?;
            if let (Some(dialects), Some(dialect)) = (dialects, &mut rule.matching.dialect) {
                match dialects.iter().find(|d| d.eq_ignore_ascii_case(dialect)) {
                    Some(known) => *dialect = (*known).to_owned(),
                    None => {
                        return Err(format!(
                            "{at}.match.dialect: no dialect {dialect:?} here (served: {})",
                            dialects.join(", ")
                        ))
                    }
                }
            }
            Ok(rule)
        })
        .collect()
}

/// What a request is matched on.
pub struct RequestFacts<'a> {
    pub dialect: Option<&'a str>,
    pub method: &'a str,
    pub path: &'a str,
    /// The user's id and login, when the request's credentials name one.
    pub user: Option<(&'a str, &'a str)>,
}

/// What the rules that fired ask for; for each action the earliest rule wins.
#[derive(Clone, Debug, Default)]
pub struct Decision {
    /// Ids of the rules that fired.
    pub rules: Vec<String>,
    pub respond: Option<Respond>,
    pub delay: Option<Duration>,
    pub throttle_bytes_per_sec: Option<u64>,
    pub cut: Option<Cut>,
    pub job: Option<JobFault>,
}

/// A rule with its id and counters, as the control plane lists it.
#[derive(Clone, Debug, Serialize)]
pub struct FaultView {
    pub id: String,
    #[serde(flatten)]
    pub rule: FaultRule,
    /// Requests that matched.
    pub matched: u64,
    /// Requests it acted on.
    pub fired: u64,
    /// Firings left, when `times` bounds them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remaining: Option<u64>,
}

struct Armed {
    id: String,
    rule: FaultRule,
    matched: u64,
    fired: u64,
    rng: SplitMix64,
    /// Where `rng` started: with shared counters, draw n is computed.
    seed: u64,
}

/// A matching request counted against one rule where every replica counts
/// (a shared job store): what the rule's `after` and `times` say.
pub struct CountAsk<'a> {
    pub id: &'a str,
    pub after: u64,
    pub times: Option<u64>,
    /// The rule fires by chance: the count gives the draw's number, and the
    /// firing is committed ([`SharedCounts::commit`]) if the draw wins.
    pub by_chance: bool,
}

/// What counting one request against a rule gave.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Counted {
    Passed,
    Fired,
    /// Eligible: the rule's n-th draw (from 1) decides.
    Draw(u64),
}

/// Rule counters kept where every replica counts them, so a `times: 1`
/// rule fires once across replicas. The rules themselves are each
/// replica's copy, changed in step by the control plane.
pub trait SharedCounts: Send + Sync {
    /// Counts one matching request against each rule, in one step.
    fn count(&self, asks: &[CountAsk<'_>]) -> Result<Vec<Counted>, zipgate_api::Error>;
    /// Counts a firing a won draw asked for, unless `times` is spent meanwhile.
    fn commit(&self, id: &str, times: Option<u64>) -> Result<bool, zipgate_api::Error>;
    /// (matched, fired) of each rule.
    fn read(&self, ids: &[&str]) -> Result<Vec<(u64, u64)>, zipgate_api::Error>;
}

/// The n-th draw (from 1) of a rule's generator, as its `rng` would give it.
fn nth_draw(seed: u64, n: u64) -> u64 {
    splitmix64(seed.wrapping_add(n.wrapping_mul(0x9E37_79B9_7F4A_7C15)))
}

fn wins(draw: u64, probability: f64) -> bool {
    ((draw >> 11) as f64 / (1u64 << 53) as f64) < probability
}

impl Armed {
    fn new(id: String, rule: FaultRule, seed: u64) -> Self {
        Armed {
            id,
            rule,
            matched: 0,
            fired: 0,
            rng: SplitMix64::new(seed),
            seed,
        }
    }

    fn view(&self) -> FaultView {
        FaultView {
            id: self.id.clone(),
            rule: self.rule.clone(),
            matched: self.matched,
            fired: self.fired,
            remaining: self.rule.times.map(|t| t.saturating_sub(self.fired)),
        }
    }

    fn matches(&self, facts: &RequestFacts) -> bool {
        let m = &self.rule.matching;
        m.dialect
            .as_deref()
            .is_none_or(|d| facts.dialect == Some(d))
            && m.method
                .as_deref()
                .is_none_or(|x| x.eq_ignore_ascii_case(facts.method))
            && m.path.as_deref().is_none_or(|p| glob(p, facts.path))
            && m.user.as_deref().is_none_or(|u| {
                facts
                    .user
                    .is_some_and(|(id, login)| id == u || login.eq_ignore_ascii_case(u))
            })
    }

    /// Counts a matching request; true when the rule acts on it.
    fn fire(&mut self) -> bool {
        self.matched += 1;
        if self.matched <= self.rule.after || self.rule.times.is_some_and(|t| self.fired >= t) {
            return false;
        }
        if let Some(p) = self.rule.probability {
            if !wins(self.rng.next_u64(), p) {
                return false;
            }
        }
        self.fired += 1;
        true
    }
}

/// How many rules may be in force at once unless `--max-faults` says
/// otherwise: every vendor request is matched against each one (50,000
/// rules took a Box create from 0.4 to 20 ms).
pub const DEFAULT_MAX_RULES: usize = 1000;

/// The rules in force, checked in the order they were added.
pub struct FaultBook {
    seed: u64,
    max: usize,
    inner: Mutex<(u64, Vec<Armed>)>,
    /// How many rules there are, readable without the lock: every vendor
    /// request asks, and almost always there are none.
    count: AtomicUsize,
    /// The live feed: told the whole list when a rule is added, removed or
    /// counts a request.
    events: crate::events::Events,
    /// Where the counters are kept when replicas share the rules.
    shared: OnceLock<Arc<dyn SharedCounts>>,
}

impl FaultBook {
    /// `seed` picks the draws of rules that give no seed of their own; at
    /// most `DEFAULT_MAX_RULES` rules.
    pub fn new(seed: u64) -> Self {
        FaultBook::with_max(seed, DEFAULT_MAX_RULES)
    }

    /// A book that holds at most `max` rules.
    pub fn with_max(seed: u64, max: usize) -> Self {
        FaultBook {
            seed,
            max,
            inner: Mutex::new((0, Vec::new())),
            count: AtomicUsize::new(0),
            events: Default::default(),
            shared: OnceLock::new(),
        }
    }

    /// Counts in `shared` from now on (before any rule is added).
    pub(crate) fn count_in(&self, shared: Arc<dyn SharedCounts>) {
        let _ = self.shared.set(shared);
    }

    /// Whether replicas share these rules (their ids then come from the
    /// shared store, and changes go to every replica).
    pub fn is_shared(&self) -> bool {
        self.shared.get().is_some()
    }

    /// The rule's seed when it gives none: the book's, mixed with its id.
    fn seed_of(&self, id: &str, rule: &FaultRule) -> u64 {
        rule.seed.unwrap_or(self.seed ^ fnv1a(id.as_bytes()))
    }

    /// Adds rules with the ids they were given (by the replica that took
    /// them from the shared store), whatever the cap: every replica must
    /// hold the same rules. Checked by the caller.
    pub fn insert(&self, new: Vec<(String, FaultRule)>) {
        if new.is_empty() {
            return;
        }
        self.with(|(_, rules)| {
            for (id, rule) in new {
                let seed = self.seed_of(&id, &rule);
                rules.push(Armed::new(id, rule, seed));
            }
        });
        self.announce();
    }

    /// Checks rules as [`FaultBook::add_all`] would, adding none.
    pub fn check_all(&self, new: &[FaultRule]) -> Result<(), AddError> {
        for (index, rule) in new.iter().enumerate() {
            rule.check()
                .map_err(|reason| AddError::Invalid { index, reason })?;
        }
        self.with(|(_, rules)| {
            if new.len() > self.max.saturating_sub(rules.len()) {
                Err(AddError::Full {
                    max: self.max,
                    in_force: rules.len(),
                    asked: new.len(),
                })
            } else {
                Ok(())
            }
        })
    }

    /// Reports changes to the rules and their counters to `events`.
    pub(crate) fn with_events(mut self, events: crate::events::Events) -> Self {
        self.events = events;
        self
    }

    fn announce(&self) {
        self.events.publish("fault", || {
            serde_json::json!({ "faults": self.list() }).to_string()
        });
    }

    fn with<R>(&self, f: impl FnOnce(&mut (u64, Vec<Armed>)) -> R) -> R {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let out = f(&mut inner);
        self.count.store(inner.1.len(), Ordering::Relaxed);
        out
    }

    pub fn add(&self, rule: FaultRule) -> Result<FaultView, AddError> {
        self.add_all(vec![rule]).map(|mut views| views.remove(0))
    }

    /// Adds every rule or, when one is invalid or they would pass the cap,
    /// none.
    pub fn add_all(&self, new: Vec<FaultRule>) -> Result<Vec<FaultView>, AddError> {
        for (index, rule) in new.iter().enumerate() {
            rule.check()
                .map_err(|reason| AddError::Invalid { index, reason })?;
        }
        let added = self.add_checked(new);
        if added.as_ref().is_ok_and(|views| !views.is_empty()) {
            self.announce();
        }
        added
    }

    fn add_checked(&self, new: Vec<FaultRule>) -> Result<Vec<FaultView>, AddError> {
        self.with(|(next, rules)| {
            if new.len() > self.max.saturating_sub(rules.len()) {
                return Err(AddError::Full {
                    max: self.max,
                    in_force: rules.len(),
                    asked: new.len(),
                });
            }
            Ok(new
                .into_iter()
                .map(|rule| {
                    *next += 1;
                    let id = format!("fault-{next}");
                    let seed = self.seed_of(&id, &rule);
                    let armed = Armed::new(id, rule, seed);
                    let view = armed.view();
                    rules.push(armed);
                    view
                })
                .collect())
        })
    }

    pub fn list(&self) -> Vec<FaultView> {
        let views = self.with(|(_, rules)| rules.iter().map(Armed::view).collect());
        self.with_shared_counts(views)
    }

    /// One rule as listed.
    pub fn get(&self, id: &str) -> Option<FaultView> {
        let view = self.with(|(_, rules)| rules.iter().find(|r| r.id == id).map(Armed::view))?;
        self.with_shared_counts(vec![view]).pop()
    }

    /// Views with the counters every replica counts, when they are shared
    /// (this replica's own, all zero, if the store does not answer).
    fn with_shared_counts(&self, mut views: Vec<FaultView>) -> Vec<FaultView> {
        let Some(shared) = self.shared.get() else {
            return views;
        };
        if views.is_empty() {
            return views;
        }
        let ids: Vec<&str> = views.iter().map(|v| v.id.as_str()).collect();
        match shared.read(&ids) {
            Ok(counts) => {
                for (view, (matched, fired)) in views.iter_mut().zip(counts) {
                    view.matched = matched;
                    view.fired = fired;
                    view.remaining = view.rule.times.map(|t| t.saturating_sub(fired));
                }
            }
            Err(error) => {
                tracing::warn!(target: "zipgate::faults", %error, "fault counters unread")
            }
        }
        views
    }

    /// Removes one rule; false when there is none with this id.
    pub fn remove(&self, id: &str) -> bool {
        let removed = self.with(|(_, rules)| {
            let before = rules.len();
            rules.retain(|r| r.id != id);
            rules.len() != before
        });
        if removed {
            self.announce();
        }
        removed
    }

    pub fn clear(&self) {
        self.with(|(_, rules)| rules.clear());
        self.announce();
    }

    pub fn is_empty(&self) -> bool {
        self.count.load(Ordering::Relaxed) == 0
    }

    /// Whether any rule matches on the user (so the caller need only find
    /// the user when it matters).
    pub fn needs_user(&self) -> bool {
        self.with(|(_, rules)| rules.iter().any(|r| r.rule.matching.user.is_some()))
    }

    /// Counts the request against every matching rule and merges what fires.
    pub fn decide(&self, facts: &RequestFacts) -> Option<Decision> {
        if let Some(shared) = self.shared.get() {
            return self.decide_shared(shared.as_ref(), facts);
        }
        let mut counted = false;
        let decision = self.with(|(_, rules)| {
            let mut decision: Option<Decision> = None;
            for armed in rules.iter_mut() {
                if !armed.matches(facts) {
                    continue;
                }
                counted = true;
                if armed.fire() {
                    merge(&mut decision, &armed.id, &armed.rule);
                }
            }
            decision
        });
        if counted {
            self.announce();
        }
        decision
    }

    /// [`FaultBook::decide`] with the counters in the shared store: the
    /// rules are matched here, counted there in one step (and a won draw
    /// committed in a second), so each firing happens once across replicas.
    /// A store that does not answer fires nothing (the request meets the
    /// store's outage on its own).
    fn decide_shared(&self, shared: &dyn SharedCounts, facts: &RequestFacts) -> Option<Decision> {
        let matching: Vec<(String, FaultRule, u64)> = self.with(|(_, rules)| {
            rules
                .iter()
                .filter(|armed| armed.matches(facts))
                .map(|armed| (armed.id.clone(), armed.rule.clone(), armed.seed))
                .collect()
        });
        if matching.is_empty() {
            return None;
        }
        let asks: Vec<CountAsk<'_>> = matching
            .iter()
            .map(|(id, rule, _)| CountAsk {
                id,
                after: rule.after,
                times: rule.times,
                by_chance: rule.probability.is_some(),
            })
            .collect();
        let counted = match shared.count(&asks) {
            Ok(counted) => counted,
            Err(error) => {
                tracing::warn!(target: "zipgate::faults", %error, "fault rules not counted");
                return None;
            }
        };
        let mut decision = None;
        for ((id, rule, seed), counted) in matching.iter().zip(counted) {
            let fired = match counted {
                Counted::Passed => false,
                Counted::Fired => true,
                Counted::Draw(n) => {
                    wins(nth_draw(*seed, n), rule.probability.unwrap_or(0.0))
                        && shared.commit(id, rule.times).unwrap_or(false)
                }
            };
            if fired {
                merge(&mut decision, id, rule);
            }
        }
        self.announce();
        decision
    }
}

/// Two books counting in `counters` (each its own handle on the same
/// store), their requests taken in turn, fire request by request as one
/// book alone does, a chance rule and a `times` rule among them, and both
/// list the counts it does. For the shared stores' tests.
#[cfg(test)]
pub(crate) fn assert_books_fire_as_one(counters: [Arc<dyn SharedCounts>; 2]) {
    let rules = || {
        vec![
            FaultRule::on("GET", "*")
                .status(503)
                .probability(0.3, 7)
                .times(20),
            FaultRule::on("GET", "*").status(429).after(3).times(1),
        ]
    };
    let alone = FaultBook::new(0);
    alone.add_all(rules()).unwrap();
    let replicas = counters.map(|counters| {
        let book = FaultBook::new(0);
        book.count_in(counters);
        let named = rules()
            .into_iter()
            .enumerate()
            .map(|(n, rule)| (format!("fault-{}", n + 1), rule))
            .collect();
        book.insert(named);
        book
    });
    let facts = RequestFacts {
        dialect: None,
        method: "GET",
        path: "/a",
        user: None,
    };
    for n in 0..200 {
        let one = alone.decide(&facts).map(|d| d.rules);
        let shared = replicas[n % 2].decide(&facts).map(|d| d.rules);
        assert_eq!(one, shared, "request {n}");
    }
    let counts = |book: &FaultBook| -> Vec<(u64, u64)> {
        book.list().iter().map(|v| (v.matched, v.fired)).collect()
    };
    for book in &replicas {
        assert_eq!(counts(book), counts(&alone));
    }
}

/// Adds what `rule` (by `id`) does to `decision`: for each action the
/// earliest rule wins.
fn merge(decision: &mut Option<Decision>, id: &str, rule: &FaultRule) {
    let d = decision.get_or_insert_with(Decision::default);
    d.rules.push(id.to_owned());
    d.respond = d.respond.take().or_else(|| rule.respond.clone());
    d.delay = d.delay.or(rule.delay_ms.map(Duration::from_millis));
    d.throttle_bytes_per_sec = d.throttle_bytes_per_sec.or(rule.throttle_bytes_per_sec);
    d.cut = d.cut.or(rule.cut);
    d.job = d.job.take().or_else(|| rule.job.clone());
}

/// Why rules were not added.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum AddError {
    #[error("{reason}")]
    Invalid { index: usize, reason: RuleError },
    #[error(
        "the fault book holds at most {max} rules ({in_force} in force, {asked} more asked): \
         remove some (DELETE /_zipgate/faults) or start zipgate with a larger --max-faults"
    )]
    Full {
        max: usize,
        in_force: usize,
        asked: usize,
    },
    /// Replicas share the rules, and the job store that passes them on
    /// did not answer: none was added.
    #[error("{0}")]
    Unavailable(String),
}

/// `*` matches any run of characters (including none and `/`).
fn glob(pattern: &str, text: &str) -> bool {
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    let (mut pi, mut ti) = (0, 0);
    let mut backtrack: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] == b'*' {
            backtrack = Some((pi, ti));
            pi += 1;
        } else if pi < p.len() && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if let Some((star, matched)) = backtrack {
            pi = star + 1;
            ti = matched + 1;
            backtrack = Some((star, matched + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts<'a>(method: &'a str, path: &'a str) -> RequestFacts<'a> {
        RequestFacts {
            dialect: Some("box"),
            method,
            path,
            user: Some(("u1", "alice")),
        }
    }

    #[test]
    fn globs() {
        assert!(glob("/2.0/zip_downloads", "/2.0/zip_downloads"));
        assert!(!glob("/2.0/zip_downloads", "/2.0/zip_downloads/x"));
        assert!(glob(
            "/2.0/zip_downloads/*/content",
            "/2.0/zip_downloads/a/b/content"
        ));
        assert!(glob("*", ""));
        assert!(glob("/a*b*c", "/aXbYbZc"));
        assert!(!glob("/a*b*c", "/aXbYbZ"));
    }

    #[test]
    fn times_and_after_count_matches() {
        let book = FaultBook::new(0);
        book.add(FaultRule::on("POST", "/x").status(429).after(1).times(2))
            .unwrap();
        let fired: Vec<bool> = (0..5)
            .map(|_| book.decide(&facts("post", "/x")).is_some())
            .collect();
        assert_eq!(fired, [false, true, true, false, false]);
        assert!(book.decide(&facts("GET", "/x")).is_none());
        let view = &book.list()[0];
        assert_eq!((view.matched, view.fired, view.remaining), (5, 2, Some(0)));
    }

    #[test]
    fn probability_is_reproducible_from_the_seed() {
        let run = |seed| {
            let book = FaultBook::new(0);
            book.add(FaultRule::on("GET", "*").status(503).probability(0.3, seed))
                .unwrap();
            (0..200)
                .map(|_| book.decide(&facts("GET", "/a")).is_some())
                .collect::<Vec<_>>()
        };
        let first = run(7);
        assert_eq!(first, run(7));
        let hits = first.iter().filter(|&&x| x).count();
        assert!((30..90).contains(&hits), "{hits} of 200 at p=0.3");
    }

    /// Counters as the shared store keeps them (fault_count.lua), in memory.
    #[derive(Default)]
    struct Counters(Mutex<BTreeMap<String, (u64, u64, u64)>>);

    impl SharedCounts for Counters {
        fn count(&self, asks: &[CountAsk<'_>]) -> Result<Vec<Counted>, zipgate_api::Error> {
            let mut all = self.0.lock().unwrap();
            Ok(asks
                .iter()
                .map(|ask| {
                    let (matched, fired, draws) = all.entry(ask.id.to_owned()).or_default();
                    *matched += 1;
                    if *matched <= ask.after || ask.times.is_some_and(|t| *fired >= t) {
                        Counted::Passed
                    } else if ask.by_chance {
                        *draws += 1;
                        Counted::Draw(*draws)
                    } else {
                        *fired += 1;
                        Counted::Fired
                    }
                })
                .collect())
        }
        fn commit(&self, id: &str, times: Option<u64>) -> Result<bool, zipgate_api::Error> {
            let mut all = self.0.lock().unwrap();
            let (_, fired, _) = all.entry(id.to_owned()).or_default();
            if times.is_some_and(|t| *fired >= t) {
                return Ok(false);
            }
            *fired += 1;
            Ok(true)
        }
        fn read(&self, ids: &[&str]) -> Result<Vec<(u64, u64)>, zipgate_api::Error> {
            let all = self.0.lock().unwrap();
            Ok(ids
                .iter()
                .map(|id| all.get(*id).map_or((0, 0), |(m, f, _)| (*m, *f)))
                .collect())
        }
    }

    #[test]
    fn replicas_counting_together_fire_as_one_book_would() {
        let counters: Arc<dyn SharedCounts> = Arc::new(Counters::default());
        assert_books_fire_as_one([counters.clone(), counters]);
    }

    #[test]
    fn earliest_rule_wins_each_action() {
        let book = FaultBook::new(0);
        book.add(FaultRule::on("GET", "*").delay(Duration::from_millis(5)))
            .unwrap();
        book.add(
            FaultRule::on("GET", "*")
                .status(500)
                .delay(Duration::from_millis(9)),
        )
        .unwrap();
        let d = book.decide(&facts("GET", "/a")).unwrap();
        assert_eq!(d.rules, ["fault-1", "fault-2"]);
        assert_eq!(d.delay, Some(Duration::from_millis(5)));
        assert_eq!(d.respond.unwrap().status, 500);
    }

    #[test]
    fn user_and_dialect_must_match_when_given() {
        let book = FaultBook::new(0);
        book.add(FaultRule::on("GET", "*").status(500).user("bob"))
            .unwrap();
        assert!(book.needs_user());
        assert!(book.decide(&facts("GET", "/a")).is_none());
        book.add(
            FaultRule::on("GET", "*")
                .status(500)
                .user("ALICE")
                .dialect("box"),
        )
        .unwrap();
        assert!(book.decide(&facts("GET", "/a")).is_some());
    }

    #[test]
    fn rules_without_an_action_or_with_bad_values_are_refused() {
        let book = FaultBook::new(0);
        assert!(book.add(FaultRule::on("GET", "*")).is_err());
        assert!(book.add(FaultRule::on("GET", "*").status(200)).is_err());
        assert!(book
            .add(FaultRule::on("GET", "*").status(500).probability(1.5, 0))
            .is_err());
        assert!(book.add(FaultRule::on("GET", "*").throttle(0)).is_err());
        assert!(book
            .add(
                FaultRule::on("GET", "*")
                    .status(429)
                    .header("bad name", "1")
            )
            .is_err());
    }

    #[test]
    fn rule_lists_parse_with_paths_in_errors() {
        let one = serde_json::json!({"delay_ms": 5});
        assert_eq!(parse_rules(&one).unwrap().len(), 1);
        let many = serde_json::json!({"faults": [{"delay_ms": 5}, {"respond": {"status": 503}}]});
        assert_eq!(parse_rules(&many).unwrap().len(), 2);
        let bad = serde_json::json!([{"delay_ms": 5}, {"respond": {"status": "x"}}]);
        let error = parse_rules(&bad).unwrap_err();
        assert!(error.starts_with("$[1].respond.status: "), "{error}");
        let inert = serde_json::json!([{"match": {"path": "/x"}}]);
        assert!(parse_rules(&inert)
            .unwrap_err()
            .starts_with("$[0]: a rule needs an action"));
    }

    #[test]
    fn json_form_round_trips() {
        let json = serde_json::json!({
            "match": {"dialect": "box", "method": "POST", "path": "/2.0/zip_downloads"},
            "times": 1,
            "respond": {"status": 429, "headers": {"retry-after": "0"}},
            "cut": {"after_bytes": 10, "how": "close"},
            "job": {"stuck": "running"}
        });
        let rule: FaultRule = serde_json::from_value(json.clone()).unwrap();
        assert_eq!(serde_json::to_value(&rule).unwrap(), json);
        let typo = serde_json::json!({"match": {"pth": "/"}, "delay_ms": 1});
        assert!(serde_json::from_value::<FaultRule>(typo).is_err());
    }
}
