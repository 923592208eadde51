//! A bucket's configuration records (policy, CORS, tagging, …): one metadata record each,
//! `R` ‖ scope ‖ 0 ‖ name, on the bucket's cores. Keyed by the incarnation's scope, so a
//! re-created bucket starts without any, and the lifecycle pass reclaims a deleted bucket's
//! (`objects::lifecycle::pass`, every `R` record of a dead scope).
//!
//! Not owned here: what a record holds and how it is checked (each configuration's module).

use bytes::{BufMut, Bytes, BytesMut};
use s3s::S3Result;

use crate::s3::{s3_err, Gateway};

/// `R` ‖ scope ‖ 0 ‖ `name`.
pub fn config_key(scope: &str, name: &str) -> Bytes {
    let mut k = BytesMut::with_capacity(scope.len() + 2 + name.len());
    k.put_u8(b'R');
    k.put_slice(scope.as_bytes());
    k.put_u8(0);
    k.put_slice(name.as_bytes());
    k.freeze()
}

impl Gateway {
    /// Stores `scope`'s configuration `name`. A write racing the bucket's deletion answers as
    /// the deletion requires (`settle_live`); its record is then reclaimed with the bucket.
    pub(crate) async fn config_put(&self, scope: &str, name: &str, value: &Bytes) -> S3Result<()> {
        let hlc = self.backend.hlc();
        self.backend
            .meta_put(
                &self.store.bucket_cores(scope),
                &config_key(scope, name),
                value,
                hlc,
            )
            .await
            .map_err(s3_err)?;
        self.store
            .settle_live(scope)
            .await
            .map_err(|e| s3_err(e.error))
    }

    /// `scope`'s configuration `name`, as stored (`None`: none).
    pub(crate) async fn config_read(&self, scope: &str, name: &str) -> S3Result<Option<Bytes>> {
        let entry = self
            .backend
            .meta_get(&self.store.bucket_cores(scope), &config_key(scope, name))
            .await
            .map_err(s3_err)?;
        Ok(entry.map(|e| e.value))
    }

    /// Removes `scope`'s configuration `name` (nothing to remove is no error, as in S3).
    pub(crate) async fn config_delete(&self, scope: &str, name: &str) -> S3Result<()> {
        let hlc = self.backend.hlc();
        self.backend
            .meta_delete(
                &self.store.bucket_cores(scope),
                &config_key(scope, name),
                hlc,
            )
            .await
            .map_err(s3_err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_per_scope_and_name() {
        assert_eq!(&config_key("b/00", "cors")[..], b"Rb/00\0cors");
        assert_ne!(config_key("b/00", "tagging"), config_key("b/01", "tagging"));
    }
}
