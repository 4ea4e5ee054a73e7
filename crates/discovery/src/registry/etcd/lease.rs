//! An etcd registration: a lease, kept alive, and a key attached to it.

use std::time::Duration;

use etcd_client::{Client, PutOptions};

use super::bounded;
use crate::DiscoveryError;
use crate::registry::lease::Lease;

/// A key attached to a lease that this registration keeps alive.
pub(super) struct EtcdLease {
    client: Client,
    key: String,
    value: Vec<u8>,
    /// The lease's time to live, in whole seconds (rounded up).
    ttl: i64,
    timeout: Duration,
    /// The lease, once granted.
    lease: Option<i64>,
}

impl EtcdLease {
    pub(super) fn new(
        client: Client,
        key: String,
        value: Vec<u8>,
        ttl: Duration,
        timeout: Duration,
    ) -> Self {
        let seconds = ttl.as_secs() + u64::from(ttl.subsec_nanos() > 0);
        Self {
            client,
            key,
            value,
            ttl: i64::try_from(seconds).unwrap_or(i64::MAX),
            timeout,
            lease: None,
        }
    }

    /// Grants a new lease and writes the key under it. The lease is kept
    /// only once the key is written; a lease whose key could not be written
    /// is revoked (or left to expire, if etcd does not answer).
    pub(super) async fn grant_and_put(&mut self) -> Result<(), DiscoveryError> {
        let granted = bounded(self.timeout, self.client.lease_grant(self.ttl, None)).await?;
        let lease = granted.id();
        if let Err(failed) = self.put(lease).await {
            let _ = bounded(self.timeout, self.client.lease_revoke(lease)).await;
            return Err(failed);
        }
        if let Some(old) = self.lease.replace(lease) {
            // An old lease etcd may still know: it holds nothing now.
            let _ = bounded(self.timeout, self.client.lease_revoke(old)).await;
        }
        Ok(())
    }

    /// Writes the key under `lease`.
    async fn put(&mut self, lease: i64) -> Result<(), DiscoveryError> {
        let options = PutOptions::new().with_lease(lease);
        let (key, value) = (self.key.clone(), self.value.clone());
        bounded(self.timeout, self.client.put(key, value, Some(options))).await?;
        Ok(())
    }

    /// Puts the key back under `lease` if it is gone (deleted by hand, or
    /// replaced by another registration of the same id that then left). A
    /// key held by another lease is left to that registration.
    async fn restore_key(&mut self, lease: i64) -> Result<(), DiscoveryError> {
        let key = self.key.clone();
        let found = bounded(self.timeout, self.client.get(key, None)).await?;
        if found.kvs().is_empty() {
            self.put(lease).await?;
        }
        Ok(())
    }

    /// Renews the lease once; the time to live etcd answers (0 if it does
    /// not know the lease).
    async fn keep_alive(&mut self, lease: i64) -> Result<i64, DiscoveryError> {
        let client = &mut self.client;
        let renewed = bounded(self.timeout, async move {
            let (mut keeper, mut answers) = client.lease_keep_alive(lease).await?;
            keeper.keep_alive().await?;
            Ok(answers.message().await?.map_or(0, |answer| answer.ttl()))
        })
        .await;
        match renewed {
            // etcd-client reports a lease etcd does not know as an error.
            Err(DiscoveryError::Backend { source, .. }) if not_found(&*source) => Ok(0),
            renewed => renewed,
        }
    }
}

impl Lease for EtcdLease {
    async fn refresh(&mut self) -> Result<(), DiscoveryError> {
        if let Some(lease) = self.lease
            && self.keep_alive(lease).await? > 0
        {
            return self.restore_key(lease).await;
        }
        // etcd lost the lease, and the key with it: register again.
        #[cfg(feature = "tracing")]
        tracing::info!(target: "seawall::discovery", key = %self.key, "lease lost; registering again");
        self.grant_and_put().await
    }

    async fn deregister(&mut self) -> Result<(), DiscoveryError> {
        let Some(lease) = self.lease.take() else {
            return Ok(());
        };
        // Revoking the lease deletes the key.
        match bounded(self.timeout, self.client.lease_revoke(lease)).await {
            Ok(_) => Ok(()),
            // It expired meanwhile, and the key went with it.
            Err(DiscoveryError::Backend { source, .. }) if not_found(&*source) => Ok(()),
            Err(failed) => Err(failed),
        }
    }
}

/// Whether etcd said it does not know the lease (which it and etcd-client
/// say only in the error's text).
fn not_found(error: &(dyn std::error::Error + 'static)) -> bool {
    error.to_string().contains("lease not found")
}
