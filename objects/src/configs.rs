//! A bucket's configuration records (policy, CORS, tagging, Object Lock, …): one metadata
//! record each, `R` ‖ scope ‖ 0 ‖ name, on the bucket's cores. Keyed by the incarnation's
//! scope, so a re-created bucket starts without any, and the background pass reclaims a deleted
//! bucket's (every `R` record of a dead scope).
//!
//! Not owned here: what a record holds and how it is checked (each configuration's module).

use bytes::{BufMut, Bytes, BytesMut};

use crate::error::Result;
use crate::store::Store;

/// `R` ‖ scope ‖ 0 ‖ `name`.
pub fn config_key(scope: &str, name: &str) -> Bytes {
    let mut k = BytesMut::with_capacity(scope.len() + 2 + name.len());
    k.put_u8(b'R');
    k.put_slice(scope.as_bytes());
    k.put_u8(0);
    k.put_slice(name.as_bytes());
    k.freeze()
}

impl Store {
    /// Stores `scope`'s configuration `name`. A write racing the bucket's deletion answers as
    /// the deletion requires (`settle_live`); its record is then reclaimed with the bucket.
    pub async fn config_put(&self, scope: &str, name: &str, value: &Bytes) -> Result<()> {
        let hlc = self.backend.hlc();
        let cores = self.bucket_cores(scope);
        self.backend
            .meta_put(&cores, &config_key(scope, name), value, hlc)
            .await?;
        self.settle_live(scope).await.map_err(|e| e.error)
    }

    /// `scope`'s configuration `name`, as stored (`None`: none).
    pub async fn config_read(&self, scope: &str, name: &str) -> Result<Option<Bytes>> {
        let cores = self.bucket_cores(scope);
        let entry = self
            .backend
            .meta_get(&cores, &config_key(scope, name))
            .await?;
        Ok(entry.map(|e| e.value))
    }

    /// Removes `scope`'s configuration `name` (nothing to remove is no error, as in S3).
    pub async fn config_delete(&self, scope: &str, name: &str) -> Result<()> {
        let hlc = self.backend.hlc();
        let cores = self.bucket_cores(scope);
        self.backend
            .meta_delete(&cores, &config_key(scope, name), hlc)
            .await?;
        Ok(())
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
