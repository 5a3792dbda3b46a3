//! The store's file on disk: reading it (moving a corrupt one aside, restricting one readable by
//! others), recognising another program's file, and replacing it atomically.

use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use super::{DEFAULT_FILE_NAME, StoreData, store_error};
use crate::AuthError;

/// Whether the file is a JSON object of another format: it has keys, but not our `version`.
pub(super) fn is_foreign(path: &Path) -> bool {
    if path.file_name().is_some_and(|n| n == DEFAULT_FILE_NAME) {
        return false;
    }
    let Ok(bytes) = std::fs::read(path) else {
        return false;
    };
    match serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(&bytes) {
        Ok(m) => !m.is_empty() && !m.contains_key("version"),
        Err(_) => false,
    }
}

pub(super) fn read_file(path: &Path) -> Result<Option<StoreData>, AuthError> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(store_error(path, e)),
    };
    if let Ok(meta) = std::fs::metadata(path)
        && meta.permissions().mode() & 0o077 != 0
    {
        tracing::warn!(path = %path.display(), "token store was readable by others; restricting it to the user (0600)");
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| store_error(path, e))?;
    }
    match serde_json::from_slice::<StoreData>(&bytes) {
        Ok(d) => Ok(Some(d)),
        Err(e) => {
            let aside = path.with_extension(format!("corrupt-{}", unix_now_secs()));
            tracing::warn!(path = %path.display(), aside = %aside.display(), error = %e, "token store is not valid JSON; moved aside, starting empty");
            std::fs::rename(path, &aside).map_err(|e| store_error(path, e))?;
            Ok(None)
        }
    }
}

fn unix_now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Writes `bytes` to `path` atomically with mode 0600, creating the directory (0700) if needed.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "oauth-tokens.json".into());
    let (dir, tmp) = private_temp_beside(path, &name, bytes)?;
    if let Err(e) = std::fs::rename(&tmp, path) {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    // Make the rename itself durable.
    if let Ok(d) = std::fs::File::open(&dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// `bytes` written and synced to a new private (0600) temporary file named after `stem`, in
/// `path`'s directory (created 0700 if missing): the directory and the file, for the caller
/// to move into place. Nothing is left behind when this fails.
pub(crate) fn private_temp_beside(
    path: &Path,
    stem: &str,
    bytes: &[u8],
) -> std::io::Result<(PathBuf, PathBuf)> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
        _ => PathBuf::from("."),
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)?;
    let mut nonce = [0u8; 6];
    getrandom::fill(&mut nonce).map_err(|e| std::io::Error::other(e.to_string()))?;
    let nonce: String = nonce.iter().map(|b| format!("{b:02x}")).collect();
    let tmp = dir.join(format!(".{stem}.{}.{nonce}.tmp", std::process::id()));
    let written = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    Ok((dir, tmp))
}
