#!/usr/bin/env bash
# Real command-line clients against a real `percore serve` on 127.0.0.1: the aws CLI, s3cmd
# and rclone each upload, list, download, compare and delete a multi-MiB file, and sync a
# small tree. Usage: tests/clients.sh PERCORE_BIN VENV (tests/run.sh calls it).
set -euo pipefail
# `! cmd` never stops a `set -e` script; this does: the command must fail.
fails() {
  if "$@"; then
    echo "clients.sh: expected to fail: $*" >&2
    return 1
  fi
}
bin=$1
venv=$2
"$venv/bin/pip" install --quiet --disable-pip-version-check awscli==1.46.3 s3cmd==2.4.0
if ! command -v rclone >/dev/null; then
  (apt-get install -y -qq rclone >/dev/null 2>&1) ||
    (apt-get update -qq && apt-get install -y -qq rclone >/dev/null)
fi
work=$(mktemp -d)
pid=
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
RUST_LOG=warn "$bin" serve --data "$work/data" --listen "127.0.0.1:$port" --cores 2 >"$work/out" 2>"$work/err" &
pid=$!
for _ in $(seq 1 600); do grep -q '^cores:' "$work/out" 2>/dev/null && break; sleep 0.1; done
grep -q '^cores:' "$work/out" || { cat "$work/err"; echo "percore serve did not start"; exit 1; }
ak=$(sed -n 's/^access_key: //p' "$work/out")
sk=$(sed -n 's/^secret_key: //p' "$work/out")
endpoint="http://127.0.0.1:$port"
head -c 20000000 /dev/urandom >"$work/big.bin"
mkdir -p "$work/tree/sub"
echo one >"$work/tree/a.txt"
echo two >"$work/tree/sub/b.txt"

echo "-- aws CLI"
aws() { AWS_ACCESS_KEY_ID=$ak AWS_SECRET_ACCESS_KEY=$sk AWS_DEFAULT_REGION=us-east-1 \
  "$venv/bin/aws" --endpoint-url "$endpoint" "$@"; }
aws s3 mb s3://aws-cli-bkt >/dev/null
aws s3 cp --only-show-errors "$work/big.bin" s3://aws-cli-bkt/big.bin
aws s3 ls s3://aws-cli-bkt/ | grep -q '20000000 big.bin'
aws s3 cp --only-show-errors s3://aws-cli-bkt/big.bin "$work/aws.out"
cmp "$work/big.bin" "$work/aws.out"
aws s3 sync --only-show-errors "$work/tree" s3://aws-cli-bkt/tree/
[ "$(aws s3 ls --recursive s3://aws-cli-bkt/ | wc -l)" = 3 ]
# Storage classes and the README's lifecycle example.
aws s3 cp --only-show-errors --storage-class STANDARD_IA "$work/tree/a.txt" s3://aws-cli-bkt/ia.txt
aws s3api head-object --bucket aws-cli-bkt --key ia.txt | grep -q '"StorageClass": "STANDARD_IA"'
root=$(cd "$(dirname "$0")/.." && pwd)
aws s3api put-bucket-lifecycle-configuration --bucket aws-cli-bkt \
  --lifecycle-configuration "file://$root/examples/lifecycle.json"
aws s3api get-bucket-lifecycle-configuration --bucket aws-cli-bkt >"$work/lc.json"
grep -q '"ID": "logs-to-cold"' "$work/lc.json"
grep -q '"NewerNoncurrentVersions": 3' "$work/lc.json"
aws s3api delete-bucket-lifecycle --bucket aws-cli-bkt
# The README's bucket ACL example: anyone may list a public-read bucket, only signed users one
# readable by AuthenticatedUsers.
aws s3api put-bucket-acl --bucket aws-cli-bkt --acl public-read
aws s3api get-bucket-acl --bucket aws-cli-bkt | grep -q 'groups/global/AllUsers'
curl -sf "$endpoint/aws-cli-bkt?list-type=2" | grep -q '<Key>big.bin</Key>'
aws s3api put-bucket-acl --bucket aws-cli-bkt --grant-full-control "id=$ak" \
  --grant-read uri=http://acs.amazonaws.com/groups/global/AuthenticatedUsers
aws s3api get-bucket-acl --bucket aws-cli-bkt | grep -q 'groups/global/AuthenticatedUsers'
fails curl -sf "$endpoint/aws-cli-bkt?list-type=2" >/dev/null
aws s3api put-bucket-acl --bucket aws-cli-bkt --acl private
# The README's object ACL example: anyone may GET a public-read object, and no other; a grant
# replaces it.
aws s3api put-object --bucket aws-cli-bkt --key cat.txt --body "$work/tree/a.txt" \
  --acl public-read >/dev/null
curl -sf "$endpoint/aws-cli-bkt/cat.txt" | grep -q one
anon_get() { curl -s -o /dev/null -w '%{http_code}' "$endpoint/aws-cli-bkt/$1"; }
[ "$(anon_get big.bin)" = 403 ]
aws s3api put-object-acl --bucket aws-cli-bkt --key cat.txt --grant-read "id=$ak"
aws s3api get-object-acl --bucket aws-cli-bkt --key cat.txt | grep -q '"Permission": "READ"'
[ "$(anon_get cat.txt)" = 403 ]
# The README's object ownership example (one user here: the writer is the bucket owner).
aws s3api put-bucket-ownership-controls --bucket aws-cli-bkt \
  --ownership-controls 'Rules=[{ObjectOwnership=ObjectWriter}]'
aws s3api put-object --bucket aws-cli-bkt --key report.txt --body "$work/tree/a.txt" \
  --acl bucket-owner-full-control >/dev/null
aws s3api list-objects-v2 --bucket aws-cli-bkt --fetch-owner --prefix report \
  | grep -q "\"ID\": \"$ak\""
aws s3api delete-bucket-ownership-controls --bucket aws-cli-bkt
# The README's Block Public Access example.
aws s3api put-public-access-block --bucket aws-cli-bkt --public-access-block-configuration \
  BlockPublicAcls=true,IgnorePublicAcls=true,BlockPublicPolicy=true,RestrictPublicBuckets=true
aws s3api get-public-access-block --bucket aws-cli-bkt | grep -q '"RestrictPublicBuckets": true'
public='{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*",
  "Action":"s3:GetObject","Resource":"arn:aws:s3:::aws-cli-bkt/*"}]}'
fails aws s3api put-bucket-policy --bucket aws-cli-bkt --policy "$public" 2>"$work/pab.err"
grep -q AccessDenied "$work/pab.err"
aws s3api put-bucket-ownership-controls --bucket aws-cli-bkt \
  --ownership-controls 'Rules=[{ObjectOwnership=BucketOwnerEnforced}]'
aws s3api get-bucket-ownership-controls --bucket aws-cli-bkt | grep -q BucketOwnerEnforced
aws s3api delete-public-access-block --bucket aws-cli-bkt
aws s3 rm --only-show-errors --recursive s3://aws-cli-bkt/
aws s3 rb s3://aws-cli-bkt >/dev/null
# Object Lock (the README example): a COMPLIANCE version nobody deletes, a GOVERNANCE one
# from the default retention, held, released, its retention bypassed, then deleted.
aws s3api create-bucket --bucket aws-lock-bkt --object-lock-enabled-for-bucket >/dev/null
aws s3api get-bucket-versioning --bucket aws-lock-bkt | grep -q '"Status": "Enabled"'
aws s3api put-object-lock-configuration --bucket aws-lock-bkt --object-lock-configuration \
  'ObjectLockEnabled=Enabled,Rule={DefaultRetention={Mode=GOVERNANCE,Days=1}}'
aws s3api get-object-lock-configuration --bucket aws-lock-bkt | grep -q '"Days": 1'
until=$(date -u -d '+1 hour' +%Y-%m-%dT%H:%M:%SZ)
kept=$(aws s3api put-object --bucket aws-lock-bkt --key kept.txt --body "$work/tree/a.txt" \
  --object-lock-mode COMPLIANCE --object-lock-retain-until-date "$until" \
  --query VersionId --output text)
aws s3api get-object-retention --bucket aws-lock-bkt --key kept.txt | grep -q COMPLIANCE
fails aws s3api delete-object --bucket aws-lock-bkt --key kept.txt --version-id "$kept" \
  --bypass-governance-retention 2>"$work/lock.err"
grep -q AccessDenied "$work/lock.err"
gov=$(aws s3api put-object --bucket aws-lock-bkt --key gov.txt --body "$work/tree/a.txt" \
  --query VersionId --output text)
aws s3api get-object-retention --bucket aws-lock-bkt --key gov.txt | grep -q GOVERNANCE
aws s3api put-object-legal-hold --bucket aws-lock-bkt --key gov.txt --legal-hold Status=ON
aws s3api get-object-legal-hold --bucket aws-lock-bkt --key gov.txt | grep -q '"Status": "ON"'
fails aws s3api delete-object --bucket aws-lock-bkt --key gov.txt --version-id "$gov" \
  --bypass-governance-retention 2>/dev/null
aws s3api put-object-legal-hold --bucket aws-lock-bkt --key gov.txt --legal-hold Status=OFF
aws s3api put-object-retention --bucket aws-lock-bkt --key gov.txt --retention '{}' \
  --bypass-governance-retention
aws s3api delete-object --bucket aws-lock-bkt --key gov.txt --version-id "$gov" >/dev/null
[ "$(aws s3api list-object-versions --bucket aws-lock-bkt --query 'length(Versions)')" = 1 ]
# Encryption (README "Encryption"): SSE-S3 asked by a PUT, then as the bucket's default (on
# PUT and multipart uploads), then SSE-C.
aws s3api create-bucket --bucket aws-enc-bkt >/dev/null
aws s3 cp --only-show-errors --sse AES256 "$work/tree/a.txt" s3://aws-enc-bkt/sse.txt
aws s3api head-object --bucket aws-enc-bkt --key sse.txt | grep -q '"ServerSideEncryption": "AES256"'
fails aws s3api get-bucket-encryption --bucket aws-enc-bkt 2>"$work/enc.err"
grep -q ServerSideEncryptionConfigurationNotFoundError "$work/enc.err"
aws s3api put-bucket-encryption --bucket aws-enc-bkt --server-side-encryption-configuration \
  '{"Rules":[{"ApplyServerSideEncryptionByDefault":{"SSEAlgorithm":"AES256"}}]}'
aws s3api get-bucket-encryption --bucket aws-enc-bkt | grep -q '"SSEAlgorithm": "AES256"'
aws s3 cp --only-show-errors "$work/tree/sub/b.txt" s3://aws-enc-bkt/default.txt
aws s3api head-object --bucket aws-enc-bkt --key default.txt |
  grep -q '"ServerSideEncryption": "AES256"'
aws s3 cp --only-show-errors s3://aws-enc-bkt/default.txt "$work/enc.out"
cmp "$work/tree/sub/b.txt" "$work/enc.out"
# 20 MB: the CLI uploads in parts (and copies with UploadPartCopy), every part sealed.
aws s3 cp --only-show-errors "$work/big.bin" s3://aws-enc-bkt/big.bin
aws s3api head-object --bucket aws-enc-bkt --key big.bin | grep -q '"ServerSideEncryption": "AES256"'
aws s3 cp --only-show-errors s3://aws-enc-bkt/big.bin "$work/enc.out"
cmp "$work/big.bin" "$work/enc.out"
# SSE-C: the customer's key on the upload, the download and both sides of a copy.
head -c 32 /dev/urandom >"$work/c.key"
head -c 32 /dev/urandom >"$work/c2.key"
aws s3 cp --only-show-errors --sse-c AES256 --sse-c-key "fileb://$work/c.key" \
  "$work/big.bin" s3://aws-enc-bkt/big-c.bin
fails aws s3 cp --only-show-errors s3://aws-enc-bkt/big-c.bin "$work/enc.out" 2>/dev/null
aws s3 cp --only-show-errors --sse-c AES256 --sse-c-key "fileb://$work/c.key" \
  s3://aws-enc-bkt/big-c.bin "$work/enc.out"
cmp "$work/big.bin" "$work/enc.out"
aws s3 cp --only-show-errors --sse-c-copy-source AES256 \
  --sse-c-copy-source-key "fileb://$work/c.key" --sse-c AES256 --sse-c-key "fileb://$work/c2.key" \
  s3://aws-enc-bkt/big-c.bin s3://aws-enc-bkt/big-c2.bin
aws s3 cp --only-show-errors --sse-c AES256 --sse-c-key "fileb://$work/c2.key" \
  s3://aws-enc-bkt/big-c2.bin "$work/enc.out"
cmp "$work/big.bin" "$work/enc.out"
aws s3api delete-bucket-encryption --bucket aws-enc-bkt
fails aws s3api get-bucket-encryption --bucket aws-enc-bkt 2>/dev/null
aws s3 rb --force s3://aws-enc-bkt >/dev/null

echo "-- s3cmd"
cat >"$work/s3cfg" <<CFG
[default]
access_key = $ak
secret_key = $sk
host_base = 127.0.0.1:$port
host_bucket = 127.0.0.1:$port
use_https = False
bucket_location = us-east-1
CFG
s3cmd() { "$venv/bin/s3cmd" -c "$work/s3cfg" --no-progress "$@"; }
s3cmd mb s3://s3cmd-bkt >/dev/null
s3cmd put "$work/big.bin" s3://s3cmd-bkt/big.bin >/dev/null
s3cmd ls s3://s3cmd-bkt | grep -q '20000000'
s3cmd get --force s3://s3cmd-bkt/big.bin "$work/s3cmd.out" >/dev/null
cmp "$work/big.bin" "$work/s3cmd.out"
s3cmd sync "$work/tree/" s3://s3cmd-bkt/tree/ >/dev/null
[ "$(s3cmd ls -r s3://s3cmd-bkt | wc -l)" = 3 ]
s3cmd del --recursive --force s3://s3cmd-bkt >/dev/null
s3cmd rb s3://s3cmd-bkt >/dev/null

echo "-- rclone"
rclone_bin=$(command -v rclone)
rclone() {
  env -u AWS_CA_BUNDLE RCLONE_CONFIG_P_TYPE=s3 RCLONE_CONFIG_P_PROVIDER=Other \
    RCLONE_CONFIG_P_ACCESS_KEY_ID="$ak" RCLONE_CONFIG_P_SECRET_ACCESS_KEY="$sk" \
    RCLONE_CONFIG_P_ENDPOINT="$endpoint" RCLONE_CONFIG_P_REGION=us-east-1 \
    "$rclone_bin" --config /dev/null -q "$@"
}
rclone mkdir p:rclone-bkt
rclone copy "$work/big.bin" p:rclone-bkt/
rclone check "$work" p:rclone-bkt/ --include big.bin
rclone copyto p:rclone-bkt/big.bin "$work/rclone.out"
cmp "$work/big.bin" "$work/rclone.out"
rclone sync "$work/tree" p:rclone-bkt/tree
[ "$(rclone ls p:rclone-bkt | wc -l)" = 3 ]
rclone purge p:rclone-bkt

kill "$pid"
wait "$pid" || { echo "percore serve did not stop cleanly"; exit 1; }
pid=
echo "clients: 3 passed, 0 failed"
