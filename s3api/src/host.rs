//! Virtual-host-style addressing (`bucket.DOMAIN`) for `--domain DOMAIN`.
//!
//! s3s's own `SingleDomain` compares the Host header with the domain including its port, so
//! `photos.s3.local:9000` (what every client sends to a server off port 80) did not match
//! `s3.local` and was taken whole as a bucket name (InvalidBucketName). Here the port is
//! dropped before matching, and a Host that is neither the domain nor under it (`localhost`,
//! another name of the machine) is served path-style rather than refused.

use std::borrow::Cow;

use s3s::host::{S3Host, VirtualHost};
use s3s::S3Result;

#[derive(Debug, Clone)]
pub struct DomainHost {
    /// Lowercase, no port.
    domain: String,
}

impl DomainHost {
    /// `domain` as given to `--domain`: a DNS name without port or scheme.
    pub fn new(domain: &str) -> Result<DomainHost, String> {
        let domain = domain.trim().trim_end_matches('.').to_ascii_lowercase();
        let valid = !domain.is_empty()
            && domain.len() <= 253
            && domain.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            });
        if !valid {
            return Err(format!(
                "--domain {domain:?}: expected a DNS name such as s3.example.com (no port)"
            ));
        }
        Ok(DomainHost { domain })
    }
}

/// The Host header without its `:port`.
fn without_port(host: &str) -> &str {
    match host.rsplit_once(':') {
        Some((name, port)) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    }
}

impl S3Host for DomainHost {
    fn parse_host_header<'a>(&'a self, host: &'a str) -> S3Result<VirtualHost<'a>> {
        let name = without_port(host).trim_end_matches('.');
        let domain = self.domain.as_str();
        let vh = VirtualHost::new(Cow::Borrowed(domain));
        if name.len() > domain.len() + 1 {
            let (bucket, rest) = name.split_at(name.len() - domain.len() - 1);
            if rest.as_bytes()[0] == b'.' && rest[1..].eq_ignore_ascii_case(domain) {
                return Ok(vh.with_bucket(Cow::Borrowed(bucket)));
            }
        }
        Ok(vh)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bucket_of(host: &str) -> Option<String> {
        let h = DomainHost::new("S3.Example.com").unwrap();
        h.parse_host_header(host)
            .unwrap()
            .bucket()
            .map(str::to_owned)
    }

    #[test]
    fn buckets_with_and_without_ports() {
        assert_eq!(
            bucket_of("photos.s3.example.com").as_deref(),
            Some("photos")
        );
        assert_eq!(
            bucket_of("photos.s3.example.com:9000").as_deref(),
            Some("photos")
        );
        assert_eq!(bucket_of("a.b.s3.example.com:9000").as_deref(), Some("a.b"));
        assert_eq!(
            bucket_of("photos.S3.EXAMPLE.com.").as_deref(),
            Some("photos")
        );
        assert_eq!(bucket_of("s3.example.com:9000"), None);
        assert_eq!(bucket_of("localhost:9000"), None);
        assert_eq!(bucket_of("xs3.example.com"), None);
        assert_eq!(bucket_of(".s3.example.com"), None);
        assert_eq!(bucket_of(""), None);
    }

    #[test]
    fn bad_domains_are_refused() {
        for d in ["", "s3.local:9000", "http://s3.local", "a..b", "a b"] {
            assert!(DomainHost::new(d).is_err(), "{d:?} was accepted");
        }
        assert!(DomainHost::new("s3.local").is_ok());
    }
}
