//! Path → handler, by `matchit`, with per-method dispatch.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use http::{Method, Request, Response};
use hyper::body::Incoming;
use zipgate_api::{Mounted, PathRules};

use super::http::Body;
use super::AppState;

pub type BoxFuture = Pin<Box<dyn Future<Output = Response<Body>> + Send>>;

/// What a handler gets: the request, the path's captured parameters, the server.
pub struct Ctx {
    pub req: Request<Incoming>,
    pub params: HashMap<String, String>,
    pub state: Arc<AppState>,
    /// The request's journal entry, for requests to vendor routes.
    pub journal: Option<u64>,
    /// An injected fault for any job this request creates.
    pub job_fault: Option<crate::jobs::JobFault>,
}

pub type Handler = Arc<dyn Fn(Ctx) -> BoxFuture + Send + Sync>;

pub enum Found {
    /// The handler, the path's parameters and the route's pattern.
    Route(Handler, HashMap<String, String>, Arc<str>),
    /// The path exists but not with this method; carries the allowed ones.
    MethodNotAllowed(Vec<Method>),
    NotFound,
}

#[derive(Default)]
pub struct Router {
    paths: matchit::Router<usize>,
    routes: Vec<Vec<(Method, Handler)>>,
    /// Each route's pattern, by index (the metrics' `route` label).
    route_patterns: Vec<Arc<str>>,
    patterns: HashMap<String, usize>,
    fallbacks: Vec<(&'static str, Arc<dyn Mounted>)>,
    /// Prefixes (lower case) and how paths under them match.
    rules: Vec<(String, PathRules)>,
    /// The dialect that owns each route, by route index.
    owners: HashMap<usize, Arc<dyn Mounted>>,
}

impl Router {
    pub fn new() -> Self {
        Router::default()
    }

    pub fn add<F, Fut>(&mut self, method: Method, pattern: &str, handler: F)
    where
        F: Fn(Ctx) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Response<Body>> + Send + 'static,
    {
        let handler: Handler = Arc::new(move |ctx| Box::pin(handler(ctx)));
        let index = match self.patterns.get(pattern) {
            Some(&index) => index,
            None => {
                let index = self.routes.len();
                self.paths
                    .insert(pattern, index)
                    .unwrap_or_else(|e| panic!("route {pattern}: {e}"));
                self.patterns.insert(pattern.to_owned(), index);
                self.routes.push(Vec::new());
                self.route_patterns.push(Arc::from(pattern));
                index
            }
        };
        self.routes[index].push((method, handler));
    }

    /// Unknown paths and methods under `prefix` are answered by `dialect`.
    pub fn fallback(&mut self, prefix: &'static str, dialect: Arc<dyn Mounted>) {
        self.fallbacks.push((prefix, dialect));
    }

    /// Records which dialect serves `pattern` (for the request journal, and
    /// to answer a wrong method on it in that vendor's terms).
    pub fn tag(&mut self, pattern: &str, dialect: Arc<dyn Mounted>) {
        if let Some(&index) = self.patterns.get(pattern) {
            self.owners.insert(index, dialect);
        }
    }

    /// The dialect that answers for `path`: the owner of the route it
    /// matches (whatever the method), else the one whose prefix it is under.
    pub fn owner_of(&self, path: &str) -> Option<Arc<dyn Mounted>> {
        let folded = self.match_path(path);
        match self.paths.at(&folded) {
            Ok(matched) => self.owners.get(matched.value).cloned(),
            Err(_) => self.fallback_for(path),
        }
    }

    /// How paths under `prefix` match (case, a trailing slash).
    pub fn path_rules(&mut self, prefix: &str, rules: PathRules) {
        if rules != PathRules::default() {
            self.rules.push((prefix.to_ascii_lowercase(), rules));
        }
    }

    /// The path as the routes are written: folded to lower case and without
    /// one trailing `/` where the owning prefix's rules say so.
    /// The rules of the longest prefix `path` is under.
    fn rules_for(&self, path: &str) -> PathRules {
        self.rules
            .iter()
            .filter(|(prefix, _)| {
                path.len() >= prefix.len() && path[..prefix.len()].eq_ignore_ascii_case(prefix)
            })
            .max_by_key(|(prefix, _)| prefix.len())
            .map(|(_, rules)| *rules)
            .unwrap_or_default()
    }

    fn match_path<'p>(&self, path: &'p str) -> std::borrow::Cow<'p, str> {
        Self::apply_rules(path, self.rules_for(path))
    }

    fn apply_rules(path: &str, rules: PathRules) -> std::borrow::Cow<'_, str> {
        let path = match path.strip_suffix('/') {
            Some(trimmed) if rules.trailing_slash && !trimmed.is_empty() => trimmed,
            _ => path,
        };
        if rules.ignore_case {
            std::borrow::Cow::Owned(path.to_ascii_lowercase())
        } else {
            std::borrow::Cow::Borrowed(path)
        }
    }

    fn fallback_for(&self, path: &str) -> Option<Arc<dyn Mounted>> {
        let path = self.match_path(path);
        self.fallbacks
            .iter()
            .filter(|(prefix, _)| path.starts_with(prefix))
            .max_by_key(|(prefix, _)| prefix.len())
            .map(|(_, dialect)| dialect.clone())
    }

    pub fn find(&self, method: &Method, path: &str) -> Found {
        let rules = self.rules_for(path);
        let head_as_get = !rules.head_only_where_declared;
        let path = Self::apply_rules(path, rules);
        let Ok(matched) = self.paths.at(&path) else {
            return Found::NotFound;
        };
        let methods = &self.routes[*matched.value];
        let handler = methods.iter().find(|(m, _)| {
            m == method || (head_as_get && method == Method::HEAD && m == Method::GET)
        });
        match handler {
            Some((_, handler)) => {
                let params = matched
                    .params
                    .iter()
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    .collect();
                Found::Route(
                    handler.clone(),
                    params,
                    self.route_patterns[*matched.value].clone(),
                )
            }
            None => Found::MethodNotAllowed(methods.iter().map(|(m, _)| m.clone()).collect()),
        }
    }
}
