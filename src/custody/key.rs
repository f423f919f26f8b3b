//! The host's Ed25519 signing key: 32 secret bytes in
//! `state_dir/host-key.ed25519`, mode 0600, created once and never
//! overwritten.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};

pub const FILE: &str = "host-key.ed25519";

#[derive(Clone)]
pub struct HostKey {
    key: SigningKey,
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{0}: not a host key (it must hold exactly 32 bytes)")]
    Malformed(PathBuf),
    #[error("{0}: the host key is readable by others (mode {1:o}); it must be 0600")]
    Exposed(PathBuf, u32),
    #[error("not an Ed25519 public key (64 hex digits): {0}")]
    BadPublic(String),
}

impl HostKey {
    /// Load the key below `state_dir`, creating it if there is none.
    /// The host's key, if it has one (never creates it: readers such as
    /// `verify` must not mint a key).
    pub fn load(state_dir: &Path) -> Result<Option<HostKey>, KeyError> {
        let path = state_dir.join(FILE);
        let io = |source| KeyError::Io { path: path.clone(), source };
        match std::fs::read(&path) {
            Ok(bytes) => {
                use std::os::unix::fs::PermissionsExt;
                let mode = std::fs::metadata(&path).map_err(io)?.permissions().mode() & 0o777;
                if mode & 0o077 != 0 {
                    return Err(KeyError::Exposed(path, mode));
                }
                let seed: [u8; 32] = bytes.try_into().map_err(|_| KeyError::Malformed(path.clone()))?;
                Ok(Some(HostKey { key: SigningKey::from_bytes(&seed) }))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io(e)),
        }
    }

    pub fn load_or_create(state_dir: &Path) -> Result<HostKey, KeyError> {
        let path = state_dir.join(FILE);
        let io = |source| KeyError::Io { path: path.clone(), source };
        match HostKey::load(state_dir) {
            Ok(Some(k)) => Ok(k),
            Ok(None) => {
                std::fs::create_dir_all(state_dir).map_err(io)?;
                let key = SigningKey::generate(&mut rand_core::OsRng);
                let tmp = state_dir.join(format!(".{FILE}.tmp"));
                let _ = std::fs::remove_file(&tmp);
                let mut f = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&tmp)
                    .map_err(|source| KeyError::Io { path: tmp.clone(), source })?;
                f.write_all(&key.to_bytes()).and_then(|()| f.sync_all()).map_err(io)?;
                // Never replace a key another process created meanwhile.
                match rustix::fs::renameat_with(
                    rustix::fs::CWD,
                    &tmp,
                    rustix::fs::CWD,
                    &path,
                    rustix::fs::RenameFlags::NOREPLACE,
                ) {
                    Ok(()) => {
                        if let Ok(d) = std::fs::File::open(state_dir) {
                            let _ = d.sync_all();
                        }
                        tracing::info!(path = %path.display(), public_key = %hex::encode(key.verifying_key().as_bytes()), "host key created");
                        Ok(HostKey { key })
                    }
                    Err(rustix::io::Errno::EXIST) => {
                        let _ = std::fs::remove_file(&tmp);
                        HostKey::load_or_create(state_dir)
                    }
                    Err(e) => Err(io(e.into())),
                }
            }
            Err(e) => Err(e),
        }
    }

    /// The public key, hex.
    pub fn public_hex(&self) -> String {
        hex::encode(self.key.verifying_key().as_bytes())
    }

    /// Sign `msg`; the signature, hex.
    pub fn sign_hex(&self, msg: &[u8]) -> String {
        hex::encode(self.key.sign(msg).to_bytes())
    }
}

/// Parse a public key: 64 hex digits, or a file holding them.
pub fn parse_public(s: &str) -> Result<VerifyingKey, KeyError> {
    let text = if Path::new(s).is_file() { std::fs::read_to_string(s).unwrap_or_default() } else { s.to_string() };
    let text = text.trim();
    let mut b = [0u8; 32];
    hex::decode_to_slice(text, &mut b).map_err(|_| KeyError::BadPublic(text.chars().take(80).collect()))?;
    VerifyingKey::from_bytes(&b).map_err(|_| KeyError::BadPublic(text.to_string()))
}

/// Check a hex signature of `msg` by `key`.
pub fn verify_hex(key: &VerifyingKey, msg: &[u8], sig_hex: &str) -> bool {
    let mut b = [0u8; 64];
    if hex::decode_to_slice(sig_hex, &mut b).is_err() {
        return false;
    }
    key.verify(msg, &Signature::from_bytes(&b)).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_once_private_and_stable() {
        let d = tempfile::tempdir().unwrap();
        let k1 = HostKey::load_or_create(d.path()).unwrap();
        let k2 = HostKey::load_or_create(d.path()).unwrap();
        assert_eq!(k1.public_hex(), k2.public_hex());
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(d.path().join(FILE)).unwrap().permissions().mode() & 0o777, 0o600);
        let sig = k1.sign_hex(b"hello");
        let pk = parse_public(&k1.public_hex()).unwrap();
        assert!(verify_hex(&pk, b"hello", &sig));
        assert!(!verify_hex(&pk, b"hellp", &sig));
        std::fs::set_permissions(d.path().join(FILE), std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(HostKey::load_or_create(d.path()), Err(KeyError::Exposed(..))));
    }
}
