//! A router that remembers the paths it serves, so that every route can be walked (the
//! authentication test asks each one without credentials).

use axum::routing::MethodRouter;
use axum::Router;

pub struct Routes<S> {
    router: Router<S>,
    // Read by the authentication walk test only.
    #[cfg_attr(not(test), allow(dead_code))]
    paths: Vec<&'static str>,
}

impl<S: Clone + Send + Sync + 'static> Routes<S> {
    pub fn new() -> Self {
        Self {
            router: Router::new(),
            paths: Vec::new(),
        }
    }

    pub fn route(mut self, path: &'static str, method: MethodRouter<S>) -> Self {
        self.router = self.router.route(path, method);
        self.paths.push(path);
        self
    }

    pub fn merge(mut self, other: Routes<S>) -> Self {
        self.router = self.router.merge(other.router);
        self.paths.extend(other.paths);
        self
    }

    /// Every path, with `{parameters}` as axum writes them.
    #[cfg(test)]
    pub fn paths(&self) -> &[&'static str] {
        &self.paths
    }

    pub fn into_router(self) -> Router<S> {
        self.router
    }
}
