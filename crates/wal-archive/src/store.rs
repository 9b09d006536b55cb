//! The object store behind an archive: S3 (or an S3-compatible server) or a
//! local directory, through the `object_store` crate, driven by a runtime
//! of the archive's own.
//!
//! Every call blocks the calling thread until the store answers (it must
//! not be a thread of an async runtime). Errors are classified once, here:
//! refused credentials and a missing bucket become their own variants,
//! naming the access key id, the bucket and the endpoint.
//!
//! Durability: an S3 `PUT` is durable when it returns. A `file://`
//! archive's objects are written by `object_store` to a temporary file
//! renamed into place; [`Store::put`] then syncs the file and its directory
//! itself, so that an archived log survives a power cut before its local
//! copy is deleted.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use object_store::aws::{AmazonS3Builder, Checksum};
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{ClientOptions, ObjectStore, ObjectStoreExt, PutPayload, RetryConfig};
use wal_manager::ArchiveConfig;

use crate::error::{Error, Result};

/// How long a connection attempt to the store may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one request may take (a whole log's upload included).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);
/// Retries `object_store` makes of a failed request before the archive sees
/// the failure (the uploader retries on its own, with its own back-off).
const REQUEST_RETRIES_MAX: usize = 2;
/// The longest `object_store` spends retrying one request.
const REQUEST_RETRY_TIMEOUT: Duration = Duration::from_secs(15);
/// The region when neither the configuration nor the environment gives one.
const DEFAULT_REGION: &str = "us-east-1";
/// S3 error codes that mean the credentials were refused.
const CREDENTIAL_CODES: [&str; 7] = [
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "AccessDenied",
    "InvalidToken",
    "ExpiredToken",
    "InvalidClientTokenId",
    "AuthorizationHeaderMalformed",
];

/// Credentials for an `s3://` archive.
#[derive(Clone)]
pub struct S3Credentials {
    /// `AWS_ACCESS_KEY_ID`.
    pub access_key_id: String,
    /// `AWS_SECRET_ACCESS_KEY`.
    pub secret_access_key: String,
    /// `AWS_SESSION_TOKEN`, for temporary credentials.
    pub session_token: Option<String>,
}

impl std::fmt::Debug for S3Credentials {
    /// Never shows the secret or the token.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Credentials")
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

impl S3Credentials {
    /// The credentials in `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and
    /// `AWS_SESSION_TOKEN`, if the first two are set.
    pub fn from_env() -> Option<S3Credentials> {
        let var = |name| std::env::var(name).ok().filter(|v: &String| !v.is_empty());
        Some(S3Credentials {
            access_key_id: var("AWS_ACCESS_KEY_ID")?,
            secret_access_key: var("AWS_SECRET_ACCESS_KEY")?,
            session_token: var("AWS_SESSION_TOKEN"),
        })
    }
}

/// Whether a `file://` archive's directory may be created.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Only read: a missing directory is an error.
    Read,
    /// Read and write: a missing directory is created.
    Write,
}

/// Where the objects are.
#[derive(Clone, Debug)]
enum Location {
    S3 {
        bucket: String,
        endpoint: String,
        access_key_id: String,
    },
    Local {
        root: PathBuf,
    },
}

/// An opened object store and the archive's prefix in it.
pub struct Store {
    url: String,
    location: Location,
    inner: Arc<dyn ObjectStore>,
    prefix: ObjectPath,
    runtime: tokio::runtime::Runtime,
    /// Set once by [`Store::cancel`]: every call in flight or to come
    /// returns [`Error::Cancelled`].
    cancel: tokio::sync::watch::Sender<bool>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("url", &self.url)
            .field("location", &self.location)
            .finish_non_exhaustive()
    }
}

/// An object in the archive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectInfo {
    /// Its name under the archive's prefix.
    pub name: String,
    /// Its size in bytes.
    pub size: u64,
}

impl Store {
    /// Opens the archive `config` names; an `s3://` archive takes its
    /// credentials from the environment ([`S3Credentials::from_env`]).
    /// Nothing is sent to the store yet ([`Store::check`] does).
    ///
    /// # Errors
    /// As [`Store::open_with`].
    pub fn open(config: &ArchiveConfig, access: Access) -> Result<Store> {
        Store::open_with(config, S3Credentials::from_env(), access)
    }

    /// Opens the archive `config` names with `credentials` (for `s3://`).
    ///
    /// # Errors
    /// [`Error::BadUrl`], [`Error::NoCredentials`] (an `s3://` archive
    /// without credentials: the store would otherwise try the cloud's
    /// metadata service), [`Error::NoSuchDirectory`] (a `file://` archive
    /// read with [`Access::Read`]), [`Error::Io`] (it cannot be created),
    /// [`Error::Start`].
    pub fn open_with(
        config: &ArchiveConfig,
        credentials: Option<S3Credentials>,
        access: Access,
    ) -> Result<Store> {
        config.validate().map_err(|reason| Error::BadUrl {
            url: config.url.clone(),
            reason,
        })?;
        let url = config.url.clone();
        let bad = |reason: String| Error::BadUrl {
            url: url.clone(),
            reason,
        };
        let (inner, prefix, location): (Arc<dyn ObjectStore>, ObjectPath, Location) =
            if let Some(rest) = url.strip_prefix("s3://") {
                let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
                let prefix = ObjectPath::parse(prefix.trim_end_matches('/'))
                    .map_err(|e| bad(format!("bad prefix: {e}")))?;
                let credentials =
                    credentials.ok_or_else(|| Error::NoCredentials { url: url.clone() })?;
                let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
                let region = config
                    .region
                    .clone()
                    .or_else(|| env("AWS_REGION"))
                    .or_else(|| env("AWS_DEFAULT_REGION"))
                    .unwrap_or_else(|| DEFAULT_REGION.to_owned());
                let endpoint = config
                    .endpoint
                    .clone()
                    .or_else(|| env("AWS_ENDPOINT_URL"))
                    .or_else(|| env("AWS_ENDPOINT"));
                let mut builder = AmazonS3Builder::new()
                    .with_bucket_name(bucket)
                    .with_region(&region)
                    .with_access_key_id(&credentials.access_key_id)
                    .with_secret_access_key(&credentials.secret_access_key)
                    .with_checksum_algorithm(Checksum::SHA256)
                    .with_client_options(
                        ClientOptions::new()
                            .with_connect_timeout(CONNECT_TIMEOUT)
                            .with_timeout(REQUEST_TIMEOUT),
                    )
                    .with_retry(RetryConfig {
                        max_retries: REQUEST_RETRIES_MAX,
                        retry_timeout: REQUEST_RETRY_TIMEOUT,
                        ..RetryConfig::default()
                    });
                if let Some(token) = &credentials.session_token {
                    builder = builder.with_token(token);
                }
                if let Some(endpoint) = &endpoint {
                    builder = builder
                        .with_endpoint(endpoint)
                        .with_allow_http(endpoint.starts_with("http://"));
                }
                let s3 = builder
                    .build()
                    .map_err(|e| bad(format!("cannot use it: {e}")))?;
                let location = Location::S3 {
                    bucket: bucket.to_owned(),
                    endpoint: endpoint.unwrap_or_else(|| format!("AWS S3 (region {region})")),
                    access_key_id: credentials.access_key_id,
                };
                (Arc::new(s3), prefix, location)
            } else {
                open_local(&url, access)?
            };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("wal-archive-io")
            .enable_all()
            .build()
            .map_err(|source| Error::Start {
                what: "runtime",
                source,
            })?;
        Ok(Store {
            url,
            location,
            inner,
            prefix,
            runtime,
            cancel: tokio::sync::watch::channel(false).0,
        })
    }

    /// The archive's URL, as configured.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The URL of object `name`, for messages.
    pub fn object_url(&self, name: &str) -> String {
        format!("{}/{name}", self.url.trim_end_matches('/'))
    }

    fn path(&self, name: &str) -> ObjectPath {
        self.prefix.clone().join(name)
    }

    /// Makes every call in flight or to come return [`Error::Cancelled`].
    pub fn cancel(&self) {
        self.cancel.send_replace(true);
    }

    /// Runs `fut` on the store's runtime, unless cancelled first.
    fn run<F: Future>(&self, fut: F) -> Result<F::Output> {
        let mut cancelled = self.cancel.subscribe();
        self.runtime
            .block_on(async move {
                tokio::select! {
                    out = fut => Some(out),
                    _ = cancelled.wait_for(|c| *c) => None,
                }
            })
            .ok_or(Error::Cancelled)
    }

    /// Checks that the archive can be listed: the bucket exists, the
    /// credentials are accepted, the server answers.
    ///
    /// # Errors
    /// As [`Store::list`].
    pub fn check(&self) -> Result<()> {
        self.list().map(|_| ())
    }

    /// The objects directly under the archive's prefix.
    ///
    /// # Errors
    /// [`Error::Credentials`], [`Error::NoSuchBucket`], [`Error::Store`].
    pub fn list(&self) -> Result<Vec<ObjectInfo>> {
        let prefix = (!self.prefix.as_ref().is_empty()).then_some(&self.prefix);
        let listed = self
            .run(self.inner.list_with_delimiter(prefix))?
            .map_err(|e| self.classify("list", self.url.clone(), e))?;
        Ok(listed
            .objects
            .into_iter()
            .filter_map(|o| {
                Some(ObjectInfo {
                    name: o.location.filename()?.to_owned(),
                    size: o.size,
                })
            })
            .collect())
    }

    /// Object `name`'s bytes; `None` if there is no such object.
    ///
    /// # Errors
    /// As [`Store::list`].
    pub fn get(&self, name: &str) -> Result<Option<Bytes>> {
        let path = self.path(name);
        let got = self.run(async {
            match self.inner.get(&path).await {
                Ok(got) => got.bytes().await.map(Some),
                Err(object_store::Error::NotFound { .. }) => Ok(None),
                Err(e) => Err(e),
            }
        })?;
        got.map_err(|e| self.classify("download", self.object_url(name), e))
    }

    /// Stores `bytes` as object `name`, replacing any object of that name,
    /// durably (see the module docs). An `s3://` store verifies the
    /// SHA-256 checksum sent with the bytes.
    ///
    /// # Errors
    /// As [`Store::list`]; [`Error::Io`] if a `file://` object cannot be
    /// synced.
    pub fn put(&self, name: &str, bytes: Bytes) -> Result<()> {
        let path = self.path(name);
        self.run(self.inner.put(&path, PutPayload::from(bytes)))?
            .map_err(|e| self.classify("upload", self.object_url(name), e))?;
        if let Location::Local { root } = &self.location {
            sync_path(&root.join(name))?;
            sync_path(root)?;
        }
        Ok(())
    }

    /// Turns a store error into the archive's, naming the credentials or
    /// the bucket when the store refused them.
    fn classify(&self, op: &'static str, object: String, e: object_store::Error) -> Error {
        if let Location::S3 {
            bucket,
            endpoint,
            access_key_id,
        } = &self.location
        {
            let text = chain_text(&e);
            let refused = CREDENTIAL_CODES
                .iter()
                .find(|code| text.contains(*code))
                .map(|code| (*code).to_owned())
                .or_else(|| {
                    matches!(
                        e,
                        object_store::Error::PermissionDenied { .. }
                            | object_store::Error::Unauthenticated { .. }
                    )
                    .then(|| "access denied".to_owned())
                });
            if let Some(code) = refused {
                return Error::Credentials {
                    url: self.url.clone(),
                    endpoint: endpoint.clone(),
                    access_key_id: access_key_id.clone(),
                    code,
                };
            }
            if text.contains("NoSuchBucket") {
                return Error::NoSuchBucket {
                    url: self.url.clone(),
                    bucket: bucket.clone(),
                    endpoint: endpoint.clone(),
                };
            }
        }
        Error::Store {
            op,
            object,
            source: e,
        }
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        self.cancel();
    }
}

/// The store of a `file://` archive, its directory created if `access`
/// allows.
fn open_local(url: &str, access: Access) -> Result<(Arc<dyn ObjectStore>, ObjectPath, Location)> {
    let bad = |reason: String| Error::BadUrl {
        url: url.to_owned(),
        reason,
    };
    let root = PathBuf::from(url.strip_prefix("file://").unwrap_or_default());
    match (std::fs::metadata(&root), access) {
        (Ok(meta), _) if meta.is_dir() => {}
        (Ok(_), _) => return Err(bad("not a directory".into())),
        (Err(e), Access::Write) if e.kind() == std::io::ErrorKind::NotFound => {
            create_dir_durably(&root)?;
        }
        (Err(e), _) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::NoSuchDirectory {
                url: url.to_owned(),
                dir: root,
            });
        }
        (Err(source), _) => return Err(Error::Io { path: root, source }),
    }
    let local =
        LocalFileSystem::new_with_prefix(&root).map_err(|e| bad(format!("cannot use it: {e}")))?;
    Ok((
        Arc::new(local),
        ObjectPath::default(),
        Location::Local { root },
    ))
}

/// An error and its sources, as one string (to find the store's error code
/// in its answer).
fn chain_text(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// `fsync`s a file or a directory.
fn sync_path(path: &std::path::Path) -> Result<()> {
    std::fs::File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(|source| Error::Io {
            path: path.to_owned(),
            source,
        })
}

/// Creates `dir` and its missing parents, syncing each parent.
pub(crate) fn create_dir_durably(dir: &std::path::Path) -> Result<()> {
    let mut missing = Vec::new();
    let mut at = dir;
    while std::fs::metadata(at).is_err() {
        missing.push(at.to_owned());
        match at.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => at = parent,
            _ => break,
        }
    }
    for path in missing.iter().rev() {
        std::fs::create_dir(path).or_else(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                Ok(())
            } else {
                Err(Error::Io {
                    path: path.clone(),
                    source: e,
                })
            }
        })?;
        if let Some(parent) = path.parent() {
            sync_path(parent)?;
        }
    }
    Ok(())
}
