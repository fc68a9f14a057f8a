//! Log sinks: where full (redacted) request and response bodies go.
//!
//! One trait, [`LogSink`], three implementations chosen by configuration
//! (`logging.request_log.bodies.sink`):
//! - [`FileSink`] (the default): JSON lines in rotating local files, one directory per
//!   organization, rotated by size and age, at most `max_files` kept per organization;
//! - `ObjectStoreSink` (feature `object-store`): one object per body on S3-compatible
//!   storage through the `object_store` crate, keyed `bodies/{org}/{yyyy-mm-dd}/{id}.json`;
//! - [`StdoutSink`]: one JSON object per line on standard output for log shippers; it keeps
//!   nothing, so its bodies cannot be fetched back.
//!
//! A sink answers each written body with a reference (`body_ref` in `log_index`) that
//! [`LogSink::read`] resolves later. The request-log writer retries a failed batch with
//! backoff, then reports it (metric and warning) and writes the index rows without
//! references: a sink outage never fails or slows a request.

use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use gateway_types::config::FileSinkConfig;
use gateway_types::ids::{LogId, OrgId};
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

/// Errors of a sink.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// File or network I/O failed.
    #[error("log sink I/O failed")]
    Io(#[from] std::io::Error),
    /// The object store failed.
    #[error("object store failed")]
    ObjectStore(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The reference is not one this sink gave out.
    #[error("not a body reference of this sink")]
    BadReference,
    /// The sink is not available in this build or configuration.
    #[error("unsupported log sink: {0}")]
    Unsupported(&'static str),
}

/// One body to keep: the record it belongs to and its JSON bytes (already redacted).
#[derive(Clone, Debug)]
pub struct BodyItem {
    /// The record's id.
    pub id: LogId,
    /// Its organization.
    pub org_id: OrgId,
    /// Its time.
    pub created_at: DateTime<Utc>,
    /// The JSON document.
    pub bytes: Arc<[u8]>,
}

/// Where bodies are kept. Implementations must be safe to call from one writer task at a time
/// (the request-log writer) while [`LogSink::read`] and [`LogSink::delete_before`] run
/// concurrently from handlers and the worker.
#[async_trait]
pub trait LogSink: Send + Sync + std::fmt::Debug {
    /// A stable short name for metrics and logs (`file`, `object_store`, `stdout`).
    fn name(&self) -> &'static str;

    /// Writes a batch; answers one reference per item, in order (`None`: not fetchable).
    /// All or nothing as far as the caller is concerned: on error the whole batch is retried.
    async fn write(&self, items: &[BodyItem]) -> Result<Vec<Option<String>>, SinkError>;

    /// The body a reference names, if it is still kept. Only references of `org` resolve.
    async fn read(&self, org: OrgId, body_ref: &str) -> Result<Option<Vec<u8>>, SinkError>;

    /// Deletes `org`'s bodies older than `before` (as precisely as the sink's layout allows:
    /// whole files for [`FileSink`]); returns how many files or objects were deleted.
    async fn delete_before(&self, org: OrgId, before: DateTime<Utc>) -> Result<u64, SinkError>;
}

/// Standard output (or any writer), one JSON object per line:
/// `{"log_id", "org_id", "created_at", "body"}`.
pub struct StdoutSink {
    out: tokio::sync::Mutex<Box<dyn tokio::io::AsyncWrite + Send + Unpin>>,
}

impl std::fmt::Debug for StdoutSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StdoutSink")
    }
}

impl Default for StdoutSink {
    fn default() -> Self {
        Self::to_writer(tokio::io::stdout())
    }
}

impl StdoutSink {
    /// Writes to standard output.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Writes to `writer` instead (tests, a pipe to a shipper).
    #[must_use]
    pub fn to_writer(writer: impl tokio::io::AsyncWrite + Send + Unpin + 'static) -> Self {
        Self {
            out: tokio::sync::Mutex::new(Box::new(writer)),
        }
    }
}

#[async_trait]
impl LogSink for StdoutSink {
    fn name(&self) -> &'static str {
        "stdout"
    }

    async fn write(&self, items: &[BodyItem]) -> Result<Vec<Option<String>>, SinkError> {
        let mut out = Vec::new();
        for item in items {
            out.extend_from_slice(
                format!(
                    r#"{{"log_id":"{}","org_id":"{}","created_at":"{}","body":"#,
                    item.id,
                    item.org_id,
                    item.created_at.to_rfc3339()
                )
                .as_bytes(),
            );
            out.extend_from_slice(&item.bytes);
            out.extend_from_slice(b"}\n");
        }
        let mut w = self.out.lock().await;
        w.write_all(&out).await?;
        w.flush().await?;
        Ok(vec![None; items.len()])
    }

    async fn read(&self, _org: OrgId, _body_ref: &str) -> Result<Option<Vec<u8>>, SinkError> {
        Ok(None)
    }

    async fn delete_before(&self, _org: OrgId, _before: DateTime<Utc>) -> Result<u64, SinkError> {
        Ok(0)
    }
}

/// Rotating local files: `{dir}/{org}/{start_ms}.jsonl`, one body per line. A reference is
/// `file:{org}/{name}:{offset}:{len}`.
#[derive(Debug)]
pub struct FileSink {
    dir: PathBuf,
    max_file_bytes: u64,
    max_file_age: Duration,
    max_files: usize,
    open: tokio::sync::Mutex<std::collections::HashMap<OrgId, OpenFile>>,
}

#[derive(Debug)]
struct OpenFile {
    name: String,
    file: tokio::fs::File,
    size: u64,
    opened: SystemTime,
}

impl FileSink {
    /// A sink writing below `cfg.dir` (created on first write).
    #[must_use]
    pub fn new(cfg: &FileSinkConfig) -> Self {
        Self {
            dir: PathBuf::from(&cfg.dir),
            max_file_bytes: cfg.max_file_bytes,
            max_file_age: Duration::from_secs(cfg.max_file_age_seconds),
            max_files: cfg.max_files.max(1),
            open: tokio::sync::Mutex::default(),
        }
    }

    fn org_dir(&self, org: OrgId) -> PathBuf {
        self.dir.join(org.to_string())
    }

    /// Opens a fresh file for `org` and deletes the oldest files beyond `max_files`.
    async fn rotate(&self, org: OrgId, at: DateTime<Utc>) -> Result<OpenFile, SinkError> {
        let dir = self.org_dir(org);
        tokio::fs::create_dir_all(&dir).await?;
        let mut ms = at.timestamp_millis();
        // Names are start times; never reuse one (two rotations in one millisecond).
        let mut names = list_files(&dir).await?;
        if let Some(last) = names.last()
            && last.0 >= ms
        {
            ms = last.0 + 1;
        }
        let name = format!("{ms:013}.jsonl");
        let file = tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join(&name))
            .await?;
        names.push((ms, name.clone()));
        while names.len() > self.max_files {
            let (_, old) = names.remove(0);
            remove_quietly(&dir.join(old)).await;
        }
        Ok(OpenFile {
            name,
            file,
            size: 0,
            opened: SystemTime::now(),
        })
    }
}

/// The `.jsonl` files of a directory as `(start_ms, name)`, oldest first.
async fn list_files(dir: &Path) -> Result<Vec<(i64, String)>, SinkError> {
    let mut out = Vec::new();
    let mut entries = match tokio::fs::read_dir(dir).await {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e.into()),
    };
    while let Some(entry) = entries.next_entry().await? {
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(ms) = name.strip_suffix(".jsonl").and_then(|s| s.parse::<i64>().ok()) {
            out.push((ms, name));
        }
    }
    out.sort();
    Ok(out)
}

async fn remove_quietly(path: &Path) {
    if let Err(e) = tokio::fs::remove_file(path).await
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(path = %path.display(), error = %e, "cannot delete a log body file");
    }
}

#[async_trait]
impl LogSink for FileSink {
    fn name(&self) -> &'static str {
        "file"
    }

    async fn write(&self, items: &[BodyItem]) -> Result<Vec<Option<String>>, SinkError> {
        let mut open = self.open.lock().await;
        let mut refs = Vec::with_capacity(items.len());
        for item in items {
            let stale = open.get(&item.org_id).is_none_or(|f| {
                f.size >= self.max_file_bytes || f.opened.elapsed().unwrap_or_default() >= self.max_file_age
            });
            if stale {
                let fresh = self.rotate(item.org_id, item.created_at).await?;
                open.insert(item.org_id, fresh);
            }
            let Some(f) = open.get_mut(&item.org_id) else {
                return Err(SinkError::BadReference);
            };
            let offset = f.size;
            let len = item.bytes.len() as u64;
            f.file.write_all(&item.bytes).await?;
            f.file.write_all(b"\n").await?;
            f.size += len + 1;
            refs.push(Some(format!("file:{}/{}:{offset}:{len}", item.org_id, f.name)));
        }
        for f in open.values_mut() {
            f.file.flush().await?;
        }
        Ok(refs)
    }

    async fn read(&self, org: OrgId, body_ref: &str) -> Result<Option<Vec<u8>>, SinkError> {
        let rest = body_ref.strip_prefix("file:").ok_or(SinkError::BadReference)?;
        let mut parts = rest.rsplitn(3, ':');
        let len: u64 = parts
            .next()
            .and_then(|s| s.parse().ok())
            .ok_or(SinkError::BadReference)?;
        let offset: u64 = parts
            .next()
            .and_then(|s| s.parse().ok())
            .ok_or(SinkError::BadReference)?;
        let path = parts.next().ok_or(SinkError::BadReference)?;
        let (ref_org, name) = path.split_once('/').ok_or(SinkError::BadReference)?;
        if ref_org != org.to_string()
            || Path::new(name)
                .components()
                .any(|c| !matches!(c, Component::Normal(_)))
            || name.contains('/')
            || len > 1 << 30
        {
            return Ok(None);
        }
        let mut file = match tokio::fs::File::open(self.org_dir(org).join(name)).await {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        file.seek(std::io::SeekFrom::Start(offset)).await?;
        let mut buf = vec![0; usize::try_from(len).map_err(|_| SinkError::BadReference)?];
        match file.read_exact(&mut buf).await {
            Ok(_) => Ok(Some(buf)),
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    async fn delete_before(&self, org: OrgId, before: DateTime<Utc>) -> Result<u64, SinkError> {
        let dir = self.org_dir(org);
        let names = list_files(&dir).await?;
        let cutoff = before.timestamp_millis();
        let open = self.open.lock().await;
        let current = open.get(&org).map(|f| f.name.clone());
        let mut deleted = 0;
        // A file holds records from its start up to the next file's start: it is wholly
        // expired when the next file started at or before the cutoff.
        for pair in names.windows(2) {
            let (this, next) = (&pair[0], &pair[1]);
            if next.0 <= cutoff && current.as_deref() != Some(this.1.as_str()) {
                remove_quietly(&dir.join(&this.1)).await;
                deleted += 1;
            }
        }
        Ok(deleted)
    }
}

#[cfg(feature = "object-store")]
pub use object::ObjectStoreSink;

#[cfg(feature = "object-store")]
mod object {
    use std::sync::Arc;

    use async_trait::async_trait;
    use chrono::{DateTime, Utc};
    use futures_util::{StreamExt, TryStreamExt};
    use gateway_types::config::ObjectStoreSinkConfig;
    use gateway_types::ids::OrgId;
    use object_store::path::Path;
    use object_store::{ObjectStore, PutPayload};

    use super::{BodyItem, LogSink, SinkError};

    fn store_error(e: object_store::Error) -> SinkError {
        SinkError::ObjectStore(Box::new(e))
    }

    /// One object per body, `{prefix}/bodies/{org}/{yyyy-mm-dd}/{id}.json`, on any
    /// `object_store` backend (S3-compatible in production; the local-filesystem and in-memory
    /// backends run the same code in tests). A reference is the object's path.
    #[derive(Debug)]
    pub struct ObjectStoreSink {
        store: Arc<dyn ObjectStore>,
        prefix: Path,
    }

    impl ObjectStoreSink {
        /// A sink over an existing store (tests, or a store built elsewhere).
        #[must_use]
        pub fn new(store: Arc<dyn ObjectStore>, prefix: &str) -> Self {
            Self {
                store,
                prefix: Path::from(prefix),
            }
        }

        /// The store `cfg.url` names: `s3://bucket/prefix` (with `cfg.endpoint` for
        /// S3-compatible servers; credentials and region from the `AWS_*` environment),
        /// `file:///dir` or `memory://`.
        ///
        /// # Errors
        /// The URL is missing, unsupported or invalid.
        pub fn from_config(cfg: &ObjectStoreSinkConfig) -> Result<Self, SinkError> {
            let raw = cfg.url.as_deref().ok_or(SinkError::Unsupported(
                "logging.request_log.bodies.object_store.url is not set",
            ))?;
            let url = url::Url::parse(raw).map_err(|e| SinkError::ObjectStore(Box::new(e)))?;
            if url.scheme() == "s3" {
                let bucket = url.host_str().unwrap_or_default();
                let mut builder = object_store::aws::AmazonS3Builder::from_env().with_bucket_name(bucket);
                if let Some(endpoint) = &cfg.endpoint {
                    builder = builder
                        .with_endpoint(endpoint)
                        .with_allow_http(endpoint.starts_with("http://"))
                        .with_virtual_hosted_style_request(false);
                }
                let store = builder.build().map_err(store_error)?;
                return Ok(Self::new(Arc::new(store), url.path().trim_matches('/')));
            }
            let (store, path) = object_store::parse_url(&url).map_err(store_error)?;
            Ok(Self {
                store: Arc::from(store),
                prefix: path,
            })
        }

        fn org_prefix(&self, org: OrgId) -> Path {
            self.prefix.child("bodies").child(org.to_string())
        }
    }

    #[async_trait]
    impl LogSink for ObjectStoreSink {
        fn name(&self) -> &'static str {
            "object_store"
        }

        async fn write(&self, items: &[BodyItem]) -> Result<Vec<Option<String>>, SinkError> {
            let owned: Vec<(Path, PutPayload)> = items
                .iter()
                .map(|item| {
                    let path = self
                        .org_prefix(item.org_id)
                        .child(item.created_at.format("%Y-%m-%d").to_string())
                        .child(format!("{}.json", item.id));
                    (path, PutPayload::from(bytes::Bytes::copy_from_slice(&item.bytes)))
                })
                .collect();
            let store = Arc::clone(&self.store);
            futures_util::stream::iter(owned)
                .map(move |(path, payload)| {
                    let store = Arc::clone(&store);
                    async move {
                        store.put(&path, payload).await.map_err(store_error)?;
                        Ok::<_, SinkError>(Some(path.to_string()))
                    }
                })
                .buffered(8)
                .try_collect()
                .await
        }

        async fn read(&self, org: OrgId, body_ref: &str) -> Result<Option<Vec<u8>>, SinkError> {
            let own = format!("{}/", self.org_prefix(org));
            if !body_ref.starts_with(&own) || body_ref.contains("..") {
                return Ok(None);
            }
            match self.store.get(&Path::from(body_ref)).await {
                Ok(got) => Ok(Some(got.bytes().await.map_err(store_error)?.to_vec())),
                Err(object_store::Error::NotFound { .. }) => Ok(None),
                Err(e) => Err(store_error(e)),
            }
        }

        async fn delete_before(&self, org: OrgId, before: DateTime<Utc>) -> Result<u64, SinkError> {
            let prefix = self.org_prefix(org);
            let mut listing = self.store.list(Some(&prefix));
            let mut doomed = Vec::new();
            while let Some(meta) = listing.next().await {
                let meta = meta.map_err(store_error)?;
                // The day directory bounds the record's time; the object's own time is a
                // second bound for objects written late.
                let day = meta
                    .location
                    .parts()
                    .nth(prefix.parts().count())
                    .and_then(|p| chrono::NaiveDate::parse_from_str(p.as_ref(), "%Y-%m-%d").ok());
                let day_end = day
                    .and_then(|d| d.succ_opt())
                    .and_then(|d| d.and_hms_opt(0, 0, 0))
                    .map(|d| d.and_utc());
                if day_end.is_some_and(|end| end <= before) || meta.last_modified < before && day.is_none() {
                    doomed.push(meta.location);
                }
            }
            let mut deleted = 0;
            for path in doomed {
                match self.store.delete(&path).await {
                    Ok(()) | Err(object_store::Error::NotFound { .. }) => deleted += 1,
                    Err(e) => return Err(store_error(e)),
                }
            }
            Ok(deleted)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(org: OrgId, text: &str) -> BodyItem {
        BodyItem {
            id: LogId::new(),
            org_id: org,
            created_at: Utc::now(),
            bytes: Arc::from(text.as_bytes()),
        }
    }

    #[tokio::test]
    async fn file_sink_writes_reads_rotates_and_bounds_files() {
        let dir = tempfile::tempdir().unwrap();
        let sink = FileSink::new(&FileSinkConfig {
            dir: dir.path().display().to_string(),
            max_file_bytes: 1024,
            max_file_age_seconds: 3600,
            max_files: 3,
        });
        let org = OrgId::new();
        let other = OrgId::new();
        let big = "x".repeat(600);
        let mut refs = Vec::new();
        for i in 0..8 {
            let r = sink
                .write(&[item(org, &format!("{{\"n\":{i},\"pad\":\"{big}\"}}"))])
                .await
                .unwrap();
            refs.push(r[0].clone().unwrap());
        }
        let files = list_files(&dir.path().join(org.to_string())).await.unwrap();
        assert_eq!(files.len(), 3, "bounded count: {files:?}");
        let last = sink.read(org, refs.last().unwrap()).await.unwrap().unwrap();
        assert!(String::from_utf8(last).unwrap().starts_with("{\"n\":7,"));
        assert!(sink.read(org, &refs[0]).await.unwrap().is_none(), "rotated away");
        assert!(
            sink.read(other, refs.last().unwrap()).await.unwrap().is_none(),
            "another org's ref"
        );
        assert!(sink.read(org, "file:../x:0:1").await.unwrap().is_none());
        let deleted = sink
            .delete_before(org, Utc::now() + chrono::Duration::days(1))
            .await
            .unwrap();
        assert_eq!(deleted, 2, "every file but the open one");
    }
}
