//! percore's S3 API (`s3api`): hyper + s3s, what `percore serve` runs on its cores
//! (`serve_cores`) and `percore gateway` on tokio (`serve`). Authenticates (SigV4 headers,
//! presigned URLs, streaming chunks: s3s, against the users of [`live_users`]), judges access,
//! then serves each request with the object service: the `objects` crate's store, called by
//! `s3::Gateway` and the object modules still here, whose errors become S3 codes in one place
//! (`s3::s3_err`). Never touches a disk, never names an engine type (a core's listener comes
//! as glommio's).

pub mod access;
pub mod acl;
pub mod attributes;
pub mod authz;
pub mod bucket_config;
pub mod bucket_encryption;
pub mod bucket_policy;
pub use objects::records;
pub mod accept_share;
pub mod checksum;
pub mod cluster_users;
pub mod core_stream;
pub mod cors;
pub mod creds;
pub mod host;
pub mod http_body;
pub mod http_conns;
pub mod http_log;
pub mod identity;
pub mod lifecycle;
pub mod limits;
pub mod live_users;
pub mod metrics;
pub mod multipart;
pub mod notify;
pub mod notify_queue;
pub mod object_acl;
pub mod object_lock;
pub mod post_form;
pub mod post_policy;
pub mod post_upload;
pub mod public_access;
pub mod refuse;
pub mod s3;
pub mod serve;
pub mod serve_cores;
pub mod sse;
pub mod tagging;
pub mod tiering;
pub mod tls;
pub mod ttl_cache;
pub mod user_admin;
pub mod versioning;

use std::sync::Arc;

/// Builds the s3s service over an object service (a single node's or a cluster's backend),
/// and the CORS front `serve` answers preflights with.
pub fn service_on(
    gateway: &s3::Gateway,
    users: Arc<live_users::LiveUsers>,
    region: &str,
    domain: Option<&str>,
) -> Result<serve::Service, String> {
    let mut builder = s3s::service::S3ServiceBuilder::new(gateway.clone_handle());
    gateway.policies.set_users(users.clone());
    builder.set_auth(live_users::Auth(users));
    builder.set_access(access::Gate::new(region, gateway.clone_handle()));
    // s3s's own bound on bodies read whole stays above ours (`http_body`), which answers the
    // right 400 where s3s's answered 500.
    let mut config = s3s::config::S3Config::default();
    config.xml_max_body_size = 2 * limits::XML_BODY_BYTES_MAX;
    builder.set_config(Arc::new(s3s::config::StaticConfigProvider::new(Arc::new(
        config,
    ))));
    let host = domain.map(host::DomainHost::new).transpose()?;
    if let Some(h) = &host {
        builder.set_host(h.clone());
    }
    Ok(serve::Service {
        s3: builder.build(),
        cors: Arc::new(cors::Front::new(gateway.clone_handle(), host.clone())),
        post: Arc::new(post_upload::Post::new(gateway.clone_handle(), region, host)),
        backend: gateway.backend().clone(),
    })
}

/// Starts the background repair of missed writes (see `hints`) on `runtime`: every
/// `cluster::limits::REPAIR_INTERVAL`, a pass over the hints held by this process's own cores, and a
/// refresh of their counters in `metrics`. Ends when the runtime does.
pub fn start_repair(backend: &Arc<cluster::backend::Backend>, runtime: &tokio::runtime::Handle) {
    let backend = backend.clone();
    let holders = backend.local_cores();
    if holders.is_empty() {
        return;
    }
    runtime.spawn(async move {
        loop {
            tokio::time::sleep(cluster::limits::REPAIR_INTERVAL).await;
            let stats = cluster::backend::in_background(backend.repair_pass(&holders)).await;
            metrics::global().record_repair(stats.repaired, stats.pending);
            for &core in &holders {
                match backend.call(core, proto::Request::Stats).await {
                    Ok(proto::Response::Stats(s)) => {
                        metrics::global().record_core(&backend.core_name(core), &s);
                    }
                    _ => {
                        if let Some(reason) = backend.offline_reason(core) {
                            metrics::global()
                                .record_core_offline(&backend.core_name(core), &reason);
                        }
                    }
                }
            }
            if stats != cluster::hints::RepairStats::default() {
                tracing::info!(
                    repaired = stats.repaired,
                    dropped = stats.dropped,
                    pending = stats.pending,
                    "repair pass"
                );
            }
        }
    });
}
