//! percore's S3 gateway: hyper + s3s on tokio. Authenticates (SigV4 headers, presigned URLs,
//! streaming chunks: s3s, against [`creds::Users`]), then routes each request to the cores that
//! own its bucket and key, through `engine::CoreHandle`. Never touches a disk.

pub mod backend;
pub mod checksum;
pub mod creds;
pub mod ec;
pub mod host;
pub mod limits;
pub mod multipart;
pub mod records;
pub mod s3;
pub mod serve;
pub mod tagging;
pub mod versioning;

use std::sync::Arc;

/// Builds the s3s service over a node's cores.
pub fn service(
    cores: Vec<engine::CoreHandle>,
    users: creds::Users,
    region: &str,
    domain: Option<&str>,
) -> Result<s3s::service::S3Service, String> {
    let backend = Arc::new(backend::Backend::new(cores));
    let mut builder =
        s3s::service::S3ServiceBuilder::new(s3::Gateway::new(backend, region.to_string()));
    builder.set_auth(users);
    if let Some(d) = domain {
        builder.set_host(host::DomainHost::new(d)?);
    }
    Ok(builder.build())
}
