//! End to end with the AWS SDK for Rust: a real `percore serve` on 127.0.0.1 driven by
//! `aws-sdk-s3` (SigV4 headers, the SDK's default CRC checksums sent as aws-chunked trailers,
//! path-style addressing). Covers buckets, objects with metadata, ranges, listing, copy, batch
//! delete, multipart, ownership between two users, error codes, and a restart.

use std::path::Path;

use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    ChecksumAlgorithm, CompletedMultipartUpload, CompletedPart, Delete, ObjectIdentifier,
};
use aws_sdk_s3::Client;
use tests::ServeProcess;

fn client(endpoint: &str, access_key: &str, secret_key: &str) -> Client {
    let http = aws_smithy_http_client::Builder::new().build_http();
    let config = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new(access_key, secret_key, None, None, "test"))
        .force_path_style(true)
        .http_client(http)
        .build();
    Client::from_conf(config)
}

fn root_client(server: &ServeProcess) -> Client {
    client(&server.endpoint, &server.access_key, &server.secret_key)
}

/// The S3 error code of a failed SDK call.
fn code<E, R>(result: Result<R, aws_sdk_s3::error::SdkError<E>>) -> String
where
    E: aws_sdk_s3::error::ProvideErrorMetadata + std::fmt::Debug,
    R: std::fmt::Debug,
{
    let err = result.expect_err("the call must fail");
    err.as_service_error()
        .and_then(aws_sdk_s3::error::ProvideErrorMetadata::code)
        .map_or_else(|| format!("not a service error: {err:?}"), str::to_owned)
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

async fn get_bytes(s3: &Client, bucket: &str, key: &str) -> Vec<u8> {
    let out = s3
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {key}: {e:?}"));
    out.body
        .collect()
        .await
        .expect("body")
        .into_bytes()
        .to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_listing_copy_and_errors() {
    let data = tempfile::tempdir().expect("tempdir");
    let server = ServeProcess::start(data.path(), 2, &[]);
    let s3 = root_client(&server);
    s3.create_bucket()
        .bucket("sdk")
        .send()
        .await
        .expect("create");
    // us-east-1: re-creating one's own bucket answers 200, as AWS does there.
    s3.create_bucket()
        .bucket("sdk")
        .send()
        .await
        .expect("re-create own bucket in us-east-1");
    assert_eq!(
        code(s3.create_bucket().bucket("Bad_Name").send().await),
        "InvalidBucketName"
    );

    // PUT with metadata, content type and an explicit SHA-256 checksum; the SDK's own CRC32
    // trailer on the others.
    let body = pattern(300_000, 7);
    s3.put_object()
        .bucket("sdk")
        .key("dir/a.bin")
        .content_type("application/x-test")
        .metadata("colour", "blue")
        .checksum_algorithm(ChecksumAlgorithm::Sha256)
        .body(ByteStream::from(body.clone()))
        .send()
        .await
        .expect("put a");
    let nasty = ["dir/ünïcødé ✓", "dir/100%", "dir/..", &"k".repeat(1024)];
    for (i, key) in nasty.iter().enumerate() {
        s3.put_object()
            .bucket("sdk")
            .key(*key)
            .body(ByteStream::from(pattern(100 + i, i as u8)))
            .send()
            .await
            .unwrap_or_else(|e| panic!("put {key}: {e:?}"));
    }
    assert_eq!(
        code(
            s3.put_object()
                .bucket("sdk")
                .key("k".repeat(1025))
                .body(ByteStream::from_static(b"x"))
                .send()
                .await
        ),
        "KeyTooLongError"
    );

    let head = s3
        .head_object()
        .bucket("sdk")
        .key("dir/a.bin")
        .send()
        .await
        .expect("head");
    assert_eq!(head.content_length(), Some(300_000));
    assert_eq!(head.content_type(), Some("application/x-test"));
    assert_eq!(
        head.metadata()
            .and_then(|m| m.get("colour"))
            .map(String::as_str),
        Some("blue")
    );
    assert_eq!(get_bytes(&s3, "sdk", "dir/a.bin").await, body);
    for (i, key) in nasty.iter().enumerate() {
        assert_eq!(get_bytes(&s3, "sdk", key).await, pattern(100 + i, i as u8));
    }

    let ranged = s3
        .get_object()
        .bucket("sdk")
        .key("dir/a.bin")
        .range("bytes=1000-1999")
        .send()
        .await
        .expect("range");
    assert_eq!(ranged.content_range(), Some("bytes 1000-1999/300000"));
    let part = ranged.body.collect().await.expect("body").into_bytes();
    assert_eq!(&part[..], &body[1000..2000]);

    let listed = s3
        .list_objects_v2()
        .bucket("sdk")
        .prefix("dir/")
        .max_keys(2)
        .send()
        .await
        .expect("list");
    assert_eq!(listed.key_count(), Some(2));
    assert_eq!(listed.is_truncated(), Some(true));
    let rest = s3
        .list_objects_v2()
        .bucket("sdk")
        .prefix("dir/")
        .continuation_token(listed.next_continuation_token().expect("token"))
        .send()
        .await
        .expect("list rest");
    assert_eq!(rest.key_count(), Some(2));
    let top = s3
        .list_objects_v2()
        .bucket("sdk")
        .delimiter("/")
        .send()
        .await
        .expect("list top");
    let prefixes: Vec<&str> = top
        .common_prefixes()
        .iter()
        .filter_map(|p| p.prefix())
        .collect();
    assert_eq!(prefixes, ["dir/"]);
    // 1024 k's sort after "dir/".
    assert_eq!(top.contents().len(), 1);

    s3.copy_object()
        .bucket("sdk")
        .key("copy.bin")
        .copy_source("sdk/dir/a.bin")
        .send()
        .await
        .expect("copy");
    assert_eq!(get_bytes(&s3, "sdk", "copy.bin").await, body);

    assert_eq!(
        code(s3.get_object().bucket("sdk").key("missing").send().await),
        "NoSuchKey"
    );
    assert_eq!(
        code(s3.get_object().bucket("nobucket").key("k").send().await),
        "NoSuchBucket"
    );
    assert_eq!(
        code(s3.delete_bucket().bucket("sdk").send().await),
        "BucketNotEmpty"
    );

    let mut ids: Vec<ObjectIdentifier> = nasty
        .iter()
        .chain(["dir/a.bin", "copy.bin"].iter())
        .map(|k| ObjectIdentifier::builder().key(*k).build().expect("id"))
        .collect();
    ids.push(
        ObjectIdentifier::builder()
            .key("never-existed")
            .build()
            .expect("id"),
    );
    let deleted = s3
        .delete_objects()
        .bucket("sdk")
        .delete(
            Delete::builder()
                .set_objects(Some(ids))
                .build()
                .expect("delete"),
        )
        .send()
        .await
        .expect("delete objects");
    assert_eq!(deleted.deleted().len(), nasty.len() + 3);
    assert!(deleted.errors().is_empty());
    s3.delete_bucket()
        .bucket("sdk")
        .send()
        .await
        .expect("delete bucket");
    server.terminate();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multipart_upload_and_abort() {
    let data = tempfile::tempdir().expect("tempdir");
    let server = ServeProcess::start(data.path(), 2, &[]);
    let s3 = root_client(&server);
    s3.create_bucket()
        .bucket("mpu-bucket")
        .send()
        .await
        .expect("create");
    let upload = s3
        .create_multipart_upload()
        .bucket("mpu-bucket")
        .key("big")
        .send()
        .await
        .expect("create upload");
    let id = upload.upload_id().expect("upload id");
    let sizes = [5 << 20, 5 << 20, 12_345];
    let mut parts = Vec::new();
    let mut whole = Vec::new();
    for (i, size) in sizes.into_iter().enumerate() {
        let bytes = pattern(size, i as u8 + 1);
        whole.extend_from_slice(&bytes);
        let number = i as i32 + 1;
        let out = s3
            .upload_part()
            .bucket("mpu-bucket")
            .key("big")
            .upload_id(id)
            .part_number(number)
            .body(ByteStream::from(bytes))
            .send()
            .await
            .expect("upload part");
        parts.push(
            CompletedPart::builder()
                .part_number(number)
                .e_tag(out.e_tag().expect("etag"))
                .build(),
        );
    }
    let listed = s3
        .list_parts()
        .bucket("mpu-bucket")
        .key("big")
        .upload_id(id)
        .send()
        .await
        .expect("list parts");
    assert_eq!(listed.parts().len(), 3);
    // Parts out of order are refused.
    let reversed: Vec<CompletedPart> = parts.iter().rev().cloned().collect();
    assert_eq!(
        code(
            s3.complete_multipart_upload()
                .bucket("mpu-bucket")
                .key("big")
                .upload_id(id)
                .multipart_upload(
                    CompletedMultipartUpload::builder()
                        .set_parts(Some(reversed))
                        .build()
                )
                .send()
                .await
        ),
        "InvalidPartOrder"
    );
    let done = s3
        .complete_multipart_upload()
        .bucket("mpu-bucket")
        .key("big")
        .upload_id(id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .set_parts(Some(parts))
                .build(),
        )
        .send()
        .await
        .expect("complete");
    assert!(done.e_tag().expect("etag").ends_with("-3\""));
    assert_eq!(get_bytes(&s3, "mpu-bucket", "big").await, whole);

    let second = s3
        .create_multipart_upload()
        .bucket("mpu-bucket")
        .key("abandoned")
        .send()
        .await
        .expect("create upload");
    let uploads = s3
        .list_multipart_uploads()
        .bucket("mpu-bucket")
        .send()
        .await
        .expect("list uploads");
    assert_eq!(uploads.uploads().len(), 1);
    s3.abort_multipart_upload()
        .bucket("mpu-bucket")
        .key("abandoned")
        .upload_id(second.upload_id().expect("id"))
        .send()
        .await
        .expect("abort");
    assert_eq!(
        code(
            s3.list_parts()
                .bucket("mpu-bucket")
                .key("abandoned")
                .upload_id(second.upload_id().expect("id"))
                .send()
                .await
        ),
        "NoSuchUpload"
    );
    server.terminate();
}

fn write_users(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("users.toml");
    std::fs::write(
        &path,
        "[[user]]\nname = \"bob\"\naccess_key = \"BOBACCESSKEY0000\"\n\
         secret_key = \"bob-secret-key-0123456789abcdef\"\n",
    )
    .expect("write users");
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ownership_signatures_and_restart() {
    let data = tempfile::tempdir().expect("tempdir");
    let users = write_users(data.path());
    let users_arg = users.to_str().expect("utf-8 path");
    let server = ServeProcess::start(&data.path().join("d"), 2, &["--users", users_arg]);
    let root = root_client(&server);
    let bob = client(
        &server.endpoint,
        "BOBACCESSKEY0000",
        "bob-secret-key-0123456789abcdef",
    );
    let forger = client(&server.endpoint, &server.access_key, "not-the-secret");
    root.create_bucket()
        .bucket("mine")
        .send()
        .await
        .expect("create");
    let objects: Vec<(String, Vec<u8>)> = (0..20)
        .map(|i| (format!("obj-{i:02}"), pattern(1000 * i + 1, i as u8)))
        .collect();
    for (key, bytes) in &objects {
        root.put_object()
            .bucket("mine")
            .key(key)
            .body(ByteStream::from(bytes.clone()))
            .send()
            .await
            .expect("put");
    }
    assert_eq!(
        code(bob.get_object().bucket("mine").key("obj-00").send().await),
        "AccessDenied"
    );
    assert_eq!(
        code(bob.delete_bucket().bucket("mine").send().await),
        "AccessDenied"
    );
    assert_eq!(
        code(forger.list_buckets().send().await),
        "SignatureDoesNotMatch"
    );
    bob.create_bucket()
        .bucket("bobs")
        .send()
        .await
        .expect("bob creates");
    let names = |out: aws_sdk_s3::operation::list_buckets::ListBucketsOutput| -> Vec<String> {
        out.buckets()
            .iter()
            .filter_map(|b| b.name().map(str::to_owned))
            .collect()
    };
    assert_eq!(
        names(bob.list_buckets().send().await.expect("list")),
        ["bobs"]
    );

    // Restart on the same data dir: everything is still there.
    assert!(server.terminate().success());
    let server = ServeProcess::start(&data.path().join("d"), 2, &["--users", users_arg]);
    let root = root_client(&server);
    for (key, bytes) in &objects {
        assert_eq!(&get_bytes(&root, "mine", key).await, bytes, "{key}");
    }
    assert_eq!(
        names(root.list_buckets().send().await.expect("list")),
        ["mine"]
    );
    server.terminate();
}
