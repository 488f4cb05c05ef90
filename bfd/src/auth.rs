//! Keyed SHA1 and Meticulous Keyed SHA1 authentication (RFC 5880 §6.7.4):
//! signing what we send, verifying what we receive, and the sequence number
//! window. The other types of §4.2 decode but are refused here.

use std::fmt;

use sha1::{Digest, Sha1};

use crate::packet::{Auth, AuthType, MANDATORY_LEN};

/// Where the Auth Key/Hash field starts: mandatory section, then Auth Type,
/// Auth Len, Auth Key ID, Reserved and the Sequence Number.
const HASH_AT: usize = MANDATORY_LEN + 8;
const HASH_LEN: usize = 20;

/// The key of a session that authenticates with (Meticulous) Keyed SHA1.
#[derive(Clone, PartialEq, Eq)]
pub struct AuthConfig {
    key_id: u8,
    /// The key, padded with zeros to 20 octets (§6.7.4).
    key: [u8; HASH_LEN],
    meticulous: bool,
}

impl fmt::Debug for AuthConfig {
    /// Never prints the key.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthConfig")
            .field("key_id", &self.key_id)
            .field("meticulous", &self.meticulous)
            .finish_non_exhaustive()
    }
}

impl AuthConfig {
    /// A key of 1 to 20 octets; `None` otherwise.
    pub fn keyed_sha1(key_id: u8, key: &[u8], meticulous: bool) -> Option<AuthConfig> {
        if key.is_empty() || key.len() > HASH_LEN {
            return None;
        }
        let mut padded = [0; HASH_LEN];
        padded[..key.len()].copy_from_slice(key);
        Some(AuthConfig {
            key_id,
            key: padded,
            meticulous,
        })
    }

    pub fn key_id(&self) -> u8 {
        self.key_id
    }

    pub fn meticulous(&self) -> bool {
        self.meticulous
    }

    pub fn auth_type(&self) -> AuthType {
        if self.meticulous {
            AuthType::MeticulousKeyedSha1
        } else {
            AuthType::KeyedSha1
        }
    }

    /// The section to put in a packet before [`AuthConfig::sign`]: the hash
    /// is filled in over the encoded bytes.
    pub fn section(&self, seq: u32) -> Auth {
        Auth::KeyedSha1 {
            meticulous: self.meticulous,
            key_id: self.key_id,
            seq,
            hash: [0; HASH_LEN],
        }
    }

    /// Fills the hash of an encoded packet that carries [`AuthConfig::section`]:
    /// SHA1 over the packet with the key in the hash field.
    pub fn sign(&self, bytes: &mut [u8]) {
        let hash = self.digest(bytes);
        bytes[HASH_AT..HASH_AT + HASH_LEN].copy_from_slice(&hash);
    }

    fn digest(&self, bytes: &[u8]) -> [u8; HASH_LEN] {
        let mut h = Sha1::new();
        h.update(&bytes[..HASH_AT]);
        h.update(self.key);
        h.update(&bytes[HASH_AT + HASH_LEN..]);
        h.finalize().into()
    }

    /// The §6.7.4 receive checks for a packet that decoded with `auth` from
    /// `bytes` (the packet exactly, Length octets). `window` is the
    /// sequence state; it moves forward only when every check passes.
    pub fn verify(
        &self,
        bytes: &[u8],
        auth: Option<&Auth>,
        detect_mult: u8,
        window: &mut SeqWindow,
    ) -> Result<(), AuthError> {
        let Some(auth) = auth else {
            return Err(AuthError::Missing);
        };
        let Auth::KeyedSha1 {
            meticulous,
            key_id,
            seq,
            hash,
        } = auth
        else {
            return Err(AuthError::WrongType {
                expected: self.auth_type(),
                got: auth.auth_type(),
            });
        };
        if *meticulous != self.meticulous {
            return Err(AuthError::WrongType {
                expected: self.auth_type(),
                got: auth.auth_type(),
            });
        }
        if *key_id != self.key_id {
            return Err(AuthError::UnknownKeyId(*key_id));
        }
        if let Some(last) = window.last {
            // Circular 32-bit space; the window is 3 × the received Detect
            // Mult, and Meticulous excludes a repeat of the last number.
            let ahead = seq.wrapping_sub(last);
            let max = 3 * u32::from(detect_mult);
            let min = u32::from(self.meticulous);
            if ahead < min || ahead > max {
                return Err(AuthError::Sequence { seq: *seq, last });
            }
        }
        if !constant_time_eq(&self.digest(bytes), hash) {
            return Err(AuthError::Digest);
        }
        window.last = Some(*seq);
        Ok(())
    }
}

fn constant_time_eq(a: &[u8; HASH_LEN], b: &[u8; HASH_LEN]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// bfd.RcvAuthSeq with bfd.AuthSeqKnown: `None` until a packet
/// authenticates, and again after a silence (the session decides when).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SeqWindow {
    pub last: Option<u32>,
}

/// Why an authenticated session discarded a packet (§6.7.4, §6.8.6).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("no authentication section, but the session authenticates")]
    Missing,
    #[error("authentication section, but the session does not authenticate")]
    Unexpected,
    #[error("{got}, but the session uses {expected}")]
    WrongType { expected: AuthType, got: AuthType },
    #[error("unknown Auth Key ID {0}")]
    UnknownKeyId(u8),
    #[error("sequence number {seq} outside the window after {last}")]
    Sequence { seq: u32, last: u32 },
    #[error("SHA1 hash does not match")]
    Digest,
}
