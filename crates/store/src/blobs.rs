//! The blob store: the bytes of files (appointment attachments, patient
//! documents, encounter-report archives), apart from their metadata rows and
//! never as base64 inside JSON.
//!
//! Blobs are content-addressed: a blob's id is a keyed SHA-256 of its
//! tenant and bytes (keyed by the server key, so an id does not reveal
//! which well-known file it holds), and storing the same bytes twice stores
//! them once. Bytes are sealed under the server key (AES-256-GCM) at rest:
//! they are patient data.
//!
//! One trait, two homes, chosen with the database ([`crate::Store::blobs`]):
//! - [`DirBlobs`], SQLite's default: a directory beside the database file
//!   (`polyclinic.db` keeps its blobs in `polyclinic.db-blobs/`). A blob is
//!   written to a temporary file, flushed to disk, then renamed into place,
//!   so a crash mid-write leaves no partial blob under any id. The caller
//!   stores the blob first and its metadata row after, in the command's
//!   transaction: a crash between the two leaves an unreferenced blob,
//!   never a listed file without its bytes.
//! - [`TableBlobs`], PostgreSQL's: the `blobs` table, written in the
//!   caller's transaction, so every node sharing the database sees every
//!   file, and the bytes commit or roll back with their metadata.

use crate::seal::SecretKey;
use crate::{Conn, StoreError, StoreResult, secs};
use futures_util::future::BoxFuture;
use jiff::Timestamp;
use polyclinic_core::TenantId;
use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Where blob bytes live. `conn` is the command's connection (inside its
/// transaction): the table store writes through it, the directory store
/// ignores it.
pub trait BlobStore: Send + Sync {
    /// Stores `bytes` for the tenant and answers their id (storing bytes
    /// already there is a no-op answering the same id).
    fn put<'a>(
        &'a self,
        conn: &'a mut Conn,
        tenant: TenantId,
        bytes: &'a [u8],
        now: Timestamp,
    ) -> BoxFuture<'a, StoreResult<String>>;

    /// The bytes stored under `id` for the tenant, if any.
    fn get<'a>(
        &'a self,
        conn: &'a mut Conn,
        tenant: TenantId,
        id: &'a str,
    ) -> BoxFuture<'a, StoreResult<Option<Vec<u8>>>>;
}

/// The content address of `bytes` for `tenant`: 64 hex characters.
fn address(key: &SecretKey, tenant: TenantId, bytes: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(key.derive("blob-address"));
    h.update(tenant.get().to_le_bytes());
    h.update(bytes);
    hex::encode(h.finalize())
}

/// Whether `id` has the shape of an address (so it is safe in a path).
fn is_address(id: &str) -> bool {
    id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

fn open(key: &SecretKey, sealed: &[u8]) -> StoreResult<Vec<u8>> {
    key.open_bytes(sealed).map_err(|e| StoreError::Corrupt(format!("a blob cannot be opened: {e}")))
}

/// Blobs in a directory: `<root>/<tenant>/<first two hex>/<id>`.
pub struct DirBlobs {
    root: PathBuf,
    key: SecretKey,
}

impl DirBlobs {
    /// A store rooted at `root` (created on first write).
    pub fn new(root: impl Into<PathBuf>, key: SecretKey) -> Self {
        DirBlobs { root: root.into(), key }
    }

    /// The directory beside a SQLite database file: `<file>-blobs`.
    pub fn beside(database_file: &Path) -> PathBuf {
        let mut name = database_file.file_name().map(|n| n.to_os_string()).unwrap_or_else(|| "polyclinic.db".into());
        name.push("-blobs");
        database_file.with_file_name(name)
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path(&self, tenant: TenantId, id: &str) -> PathBuf {
        self.root.join(tenant.get().to_string()).join(&id[..2]).join(id)
    }
}

/// Writes `bytes` to `path` all or nothing: a temporary file in the same
/// directory, synced, renamed into place, and the directory synced.
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().ok_or_else(|| std::io::Error::other("a blob path has no directory"))?;
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(".tmp-{}", uuid::Uuid::new_v4()));
    let written = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        std::fs::File::open(dir)?.sync_all()
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

fn io_error(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Aborted(format!("blob store: {what}: {e}"))
}

impl BlobStore for DirBlobs {
    fn put<'a>(
        &'a self,
        _: &'a mut Conn,
        tenant: TenantId,
        bytes: &'a [u8],
        _: Timestamp,
    ) -> BoxFuture<'a, StoreResult<String>> {
        Box::pin(async move {
            let id = address(&self.key, tenant, bytes);
            let path = self.path(tenant, &id);
            let sealed = self.key.seal_bytes(bytes);
            tokio::task::spawn_blocking(move || {
                if path.exists() {
                    return Ok(());
                }
                write_atomically(&path, &sealed)
            })
            .await
            .map_err(|e| io_error("the write task failed", e))?
            .map_err(|e| io_error("cannot write a blob", e))?;
            Ok(id)
        })
    }

    fn get<'a>(
        &'a self,
        _: &'a mut Conn,
        tenant: TenantId,
        id: &'a str,
    ) -> BoxFuture<'a, StoreResult<Option<Vec<u8>>>> {
        Box::pin(async move {
            if !is_address(id) {
                return Ok(None);
            }
            let path = self.path(tenant, id);
            let read = tokio::task::spawn_blocking(move || match std::fs::read(&path) {
                Ok(b) => Ok(Some(b)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(e),
            })
            .await
            .map_err(|e| io_error("the read task failed", e))?
            .map_err(|e| io_error("cannot read a blob", e))?;
            read.map(|sealed| open(&self.key, &sealed)).transpose()
        })
    }
}

/// Blobs in the database's `blobs` table.
pub struct TableBlobs {
    key: SecretKey,
}

impl TableBlobs {
    pub fn new(key: SecretKey) -> Self {
        TableBlobs { key }
    }
}

impl BlobStore for TableBlobs {
    fn put<'a>(
        &'a self,
        conn: &'a mut Conn,
        tenant: TenantId,
        bytes: &'a [u8],
        now: Timestamp,
    ) -> BoxFuture<'a, StoreResult<String>> {
        Box::pin(async move {
            let id = address(&self.key, tenant, bytes);
            let sealed = self.key.seal_bytes(bytes);
            sqlx::query(
                "INSERT INTO blobs (tenant_id, id, size, created_at, bytes) VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (tenant_id, id) DO NOTHING",
            )
            .bind(tenant.get())
            .bind(&id)
            .bind(i64::try_from(bytes.len()).unwrap_or(i64::MAX))
            .bind(secs(now))
            .bind(sealed)
            .execute(&mut *conn)
            .await?;
            Ok(id)
        })
    }

    fn get<'a>(
        &'a self,
        conn: &'a mut Conn,
        tenant: TenantId,
        id: &'a str,
    ) -> BoxFuture<'a, StoreResult<Option<Vec<u8>>>> {
        Box::pin(async move {
            let sealed: Option<Vec<u8>> =
                sqlx::query_scalar("SELECT bytes FROM blobs WHERE tenant_id = $1 AND id = $2")
                    .bind(tenant.get())
                    .bind(id)
                    .fetch_optional(&mut *conn)
                    .await?;
            sealed.map(|s| open(&self.key, &s)).transpose()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_depend_on_key_tenant_and_bytes() {
        let key = SecretKey::generate();
        let a = address(&key, TenantId(1), b"x");
        assert!(is_address(&a));
        assert_eq!(a, address(&key, TenantId(1), b"x"));
        assert_ne!(a, address(&key, TenantId(2), b"x"));
        assert_ne!(a, address(&key, TenantId(1), b"y"));
        assert_ne!(a, address(&SecretKey::generate(), TenantId(1), b"x"));
        assert!(!is_address("../../etc/passwd"));
    }

    #[test]
    fn the_directory_is_beside_the_database() {
        assert_eq!(
            DirBlobs::beside(Path::new("/var/lib/polyclinic.db")),
            PathBuf::from("/var/lib/polyclinic.db-blobs")
        );
    }

    #[test]
    fn an_atomic_write_leaves_no_temporary_file() {
        let dir = std::env::temp_dir().join(format!("polyclinic-blobs-{}", uuid::Uuid::new_v4()));
        let path = dir.join("ab").join("abc");
        write_atomically(&path, b"hello").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"hello");
        let names: Vec<_> = std::fs::read_dir(dir.join("ab")).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from("abc")]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
