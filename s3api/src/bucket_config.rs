//! A bucket's configuration records (policy, CORS, tagging, …): one metadata record each,
//! `R` ‖ scope ‖ 0 ‖ name, on the bucket's cores. Keyed by the incarnation's scope, so a
//! re-created bucket starts without any, and the lifecycle pass reclaims a deleted bucket's
//! (`objects::lifecycle::pass`, every `R` record of a dead scope).
//!
//! Not owned here: what a record holds and how it is checked (each configuration's module).
//! The records themselves are the object service's (`objects::configs`); these are its calls
//! answering S3 errors.

use bytes::Bytes;
use s3s::S3Result;

use crate::s3::{s3_err, Gateway};

pub use objects::configs::config_key;

impl Gateway {
    /// Stores `scope`'s configuration `name` (`Store::config_put`).
    pub(crate) async fn config_put(&self, scope: &str, name: &str, value: &Bytes) -> S3Result<()> {
        self.store
            .config_put(scope, name, value)
            .await
            .map_err(s3_err)
    }

    /// `scope`'s configuration `name`, as stored (`None`: none).
    pub(crate) async fn config_read(&self, scope: &str, name: &str) -> S3Result<Option<Bytes>> {
        self.store.config_read(scope, name).await.map_err(s3_err)
    }

    /// Removes `scope`'s configuration `name` (nothing to remove is no error, as in S3).
    pub(crate) async fn config_delete(&self, scope: &str, name: &str) -> S3Result<()> {
        self.store.config_delete(scope, name).await.map_err(s3_err)
    }
}
