//! The BFD Control packet (RFC 5880 §4.1) and its authentication section
//! (§4.2): decode, with every §6.8.6 reception check that concerns the packet
//! alone, and encode, which writes exactly what decode reads.
//!
//! Checks that need session state (which discriminator is ours, whether
//! authentication is in use, sequence numbers) belong to
//! [`crate::session`].

use std::fmt;

/// The only version RFC 5880 defines.
pub const VERSION: u8 = 1;
/// The mandatory section's length.
pub const MANDATORY_LEN: usize = 24;
/// The shortest packet with an authentication section: the mandatory section
/// plus Auth Type and Auth Len (§6.8.6).
pub const MIN_AUTH_LEN: usize = 26;

/// The Diagnostic field (§4.1): why the sender's state last changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Diag {
    NoDiagnostic,
    ControlDetectionTimeExpired,
    EchoFunctionFailed,
    NeighborSignaledSessionDown,
    ForwardingPlaneReset,
    PathDown,
    ConcatenatedPathDown,
    AdministrativelyDown,
    ReverseConcatenatedPathDown,
    /// A reserved value, 9 to 31. Decode never yields a value of 0 to 8 here;
    /// encode writes the low five bits.
    Unknown(u8),
}

impl Diag {
    /// The five-bit wire value.
    pub fn code(self) -> u8 {
        match self {
            Diag::NoDiagnostic => 0,
            Diag::ControlDetectionTimeExpired => 1,
            Diag::EchoFunctionFailed => 2,
            Diag::NeighborSignaledSessionDown => 3,
            Diag::ForwardingPlaneReset => 4,
            Diag::PathDown => 5,
            Diag::ConcatenatedPathDown => 6,
            Diag::AdministrativelyDown => 7,
            Diag::ReverseConcatenatedPathDown => 8,
            Diag::Unknown(v) => v & 0x1f,
        }
    }
}

impl From<u8> for Diag {
    /// The diagnostic of a five-bit value (higher bits are ignored).
    fn from(v: u8) -> Diag {
        match v & 0x1f {
            0 => Diag::NoDiagnostic,
            1 => Diag::ControlDetectionTimeExpired,
            2 => Diag::EchoFunctionFailed,
            3 => Diag::NeighborSignaledSessionDown,
            4 => Diag::ForwardingPlaneReset,
            5 => Diag::PathDown,
            6 => Diag::ConcatenatedPathDown,
            7 => Diag::AdministrativelyDown,
            8 => Diag::ReverseConcatenatedPathDown,
            v => Diag::Unknown(v),
        }
    }
}

impl fmt::Display for Diag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            Diag::NoDiagnostic => "no diagnostic",
            Diag::ControlDetectionTimeExpired => "control detection time expired",
            Diag::EchoFunctionFailed => "echo function failed",
            Diag::NeighborSignaledSessionDown => "neighbor signaled session down",
            Diag::ForwardingPlaneReset => "forwarding plane reset",
            Diag::PathDown => "path down",
            Diag::ConcatenatedPathDown => "concatenated path down",
            Diag::AdministrativelyDown => "administratively down",
            Diag::ReverseConcatenatedPathDown => "reverse concatenated path down",
            Diag::Unknown(v) => return write!(f, "diagnostic {v}"),
        };
        f.write_str(s)
    }
}

/// The State field (§4.1), and a session's state (§6.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum State {
    AdminDown,
    Down,
    Init,
    Up,
}

impl State {
    pub fn code(self) -> u8 {
        match self {
            State::AdminDown => 0,
            State::Down => 1,
            State::Init => 2,
            State::Up => 3,
        }
    }

    /// The state of a two-bit value (higher bits are ignored).
    pub fn from_code(v: u8) -> State {
        match v & 0x03 {
            0 => State::AdminDown,
            1 => State::Down,
            2 => State::Init,
            _ => State::Up,
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            State::AdminDown => "AdminDown",
            State::Down => "Down",
            State::Init => "Init",
            State::Up => "Up",
        })
    }
}

/// The Auth Type values of §4.2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuthType {
    SimplePassword,
    KeyedMd5,
    MeticulousKeyedMd5,
    KeyedSha1,
    MeticulousKeyedSha1,
}

impl AuthType {
    pub fn code(self) -> u8 {
        match self {
            AuthType::SimplePassword => 1,
            AuthType::KeyedMd5 => 2,
            AuthType::MeticulousKeyedMd5 => 3,
            AuthType::KeyedSha1 => 4,
            AuthType::MeticulousKeyedSha1 => 5,
        }
    }

    /// The type of a wire value; 0 is reserved and 6 to 255 are unassigned.
    pub fn from_code(v: u8) -> Option<AuthType> {
        Some(match v {
            1 => AuthType::SimplePassword,
            2 => AuthType::KeyedMd5,
            3 => AuthType::MeticulousKeyedMd5,
            4 => AuthType::KeyedSha1,
            5 => AuthType::MeticulousKeyedSha1,
            _ => return None,
        })
    }
}

impl fmt::Display for AuthType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AuthType::SimplePassword => "simple password",
            AuthType::KeyedMd5 => "keyed MD5",
            AuthType::MeticulousKeyedMd5 => "meticulous keyed MD5",
            AuthType::KeyedSha1 => "keyed SHA1",
            AuthType::MeticulousKeyedSha1 => "meticulous keyed SHA1",
        })
    }
}

/// A simple password (§4.2.2): 1 to 16 octets, so that every value encodes.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Password(Vec<u8>);

impl Password {
    pub const MAX_LEN: usize = 16;

    /// `None` when `bytes` is empty or longer than 16 octets.
    pub fn new(bytes: &[u8]) -> Option<Password> {
        (1..=Self::MAX_LEN)
            .contains(&bytes.len())
            .then(|| Password(bytes.to_vec()))
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Password {
    /// Never prints the secret.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Password(<{} octets>)", self.0.len())
    }
}

/// The authentication section (§4.2).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Auth {
    /// §4.2.2.
    SimplePassword { key_id: u8, password: Password },
    /// §4.2.3, Auth Type 2 or 3 (`meticulous`).
    KeyedMd5 {
        meticulous: bool,
        key_id: u8,
        seq: u32,
        digest: [u8; 16],
    },
    /// §4.2.4, Auth Type 4 or 5 (`meticulous`).
    KeyedSha1 {
        meticulous: bool,
        key_id: u8,
        seq: u32,
        hash: [u8; 20],
    },
}

impl Auth {
    pub fn auth_type(&self) -> AuthType {
        match self {
            Auth::SimplePassword { .. } => AuthType::SimplePassword,
            Auth::KeyedMd5 {
                meticulous: false, ..
            } => AuthType::KeyedMd5,
            Auth::KeyedMd5 {
                meticulous: true, ..
            } => AuthType::MeticulousKeyedMd5,
            Auth::KeyedSha1 {
                meticulous: false, ..
            } => AuthType::KeyedSha1,
            Auth::KeyedSha1 {
                meticulous: true, ..
            } => AuthType::MeticulousKeyedSha1,
        }
    }

    /// The Auth Len field: the whole section, type and length included.
    pub fn wire_len(&self) -> usize {
        match self {
            Auth::SimplePassword { password, .. } => 3 + password.as_bytes().len(),
            Auth::KeyedMd5 { .. } => 24,
            Auth::KeyedSha1 { .. } => 28,
        }
    }

    fn encode(&self, out: &mut Vec<u8>) {
        out.push(self.auth_type().code());
        out.push(self.wire_len() as u8);
        match self {
            Auth::SimplePassword { key_id, password } => {
                out.push(*key_id);
                out.extend_from_slice(password.as_bytes());
            }
            Auth::KeyedMd5 {
                key_id,
                seq,
                digest,
                ..
            } => {
                out.extend_from_slice(&[*key_id, 0]);
                out.extend_from_slice(&seq.to_be_bytes());
                out.extend_from_slice(digest);
            }
            Auth::KeyedSha1 {
                key_id, seq, hash, ..
            } => {
                out.extend_from_slice(&[*key_id, 0]);
                out.extend_from_slice(&seq.to_be_bytes());
                out.extend_from_slice(hash);
            }
        }
    }

    /// `bytes` is the section exactly, Auth Len octets long (checked by the
    /// caller); at least two octets.
    fn decode(bytes: &[u8]) -> Result<Auth, DecodeError> {
        let code = bytes[0];
        let len = bytes[1];
        let ty = AuthType::from_code(code).ok_or(DecodeError::UnknownAuthType(code))?;
        let ok = match ty {
            AuthType::SimplePassword => (4..=19).contains(&len),
            AuthType::KeyedMd5 | AuthType::MeticulousKeyedMd5 => len == 24,
            AuthType::KeyedSha1 | AuthType::MeticulousKeyedSha1 => len == 28,
        };
        if !ok {
            return Err(DecodeError::BadAuthLength { auth_type: ty, len });
        }
        let key_id = bytes[2];
        // The octet after the key id is Reserved for MD5 and SHA1: zero on
        // transmit, ignored on receipt (§4.2.3, §4.2.4).
        let seq = || u32::from_be_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]);
        Ok(match ty {
            AuthType::SimplePassword => Auth::SimplePassword {
                key_id,
                password: Password(bytes[3..].to_vec()),
            },
            AuthType::KeyedMd5 | AuthType::MeticulousKeyedMd5 => {
                let mut digest = [0; 16];
                digest.copy_from_slice(&bytes[8..24]);
                Auth::KeyedMd5 {
                    meticulous: ty == AuthType::MeticulousKeyedMd5,
                    key_id,
                    seq: seq(),
                    digest,
                }
            }
            AuthType::KeyedSha1 | AuthType::MeticulousKeyedSha1 => {
                let mut hash = [0; 20];
                hash.copy_from_slice(&bytes[8..28]);
                Auth::KeyedSha1 {
                    meticulous: ty == AuthType::MeticulousKeyedSha1,
                    key_id,
                    seq: seq(),
                    hash,
                }
            }
        })
    }
}

/// A BFD Control packet. The A bit is `auth.is_some()`; the M bit is always
/// clear (decode rejects it); the Length field is computed on encode.
/// Intervals are in microseconds, as on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Packet {
    pub diag: Diag,
    pub state: State,
    /// P: the sender asks for verification of a parameter change (§6.5).
    pub poll: bool,
    /// F: the answer to a Poll.
    pub fin: bool,
    /// C: the sender's BFD does not share fate with its control plane.
    pub control_plane_independent: bool,
    /// D: the sender wishes to run Demand mode (§6.6).
    pub demand: bool,
    pub detect_mult: u8,
    pub my_discriminator: u32,
    pub your_discriminator: u32,
    pub desired_min_tx_us: u32,
    pub required_min_rx_us: u32,
    pub required_min_echo_rx_us: u32,
    pub auth: Option<Auth>,
}

/// A Control packet the §6.8.6 reception checks discard.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("{len} octets: too short for a BFD Control packet")]
    Truncated { len: usize },
    #[error("version {0}, not 1")]
    BadVersion(u8),
    #[error("Length {length} below the minimum ({min}, A bit {})", if *.auth { "set" } else { "clear" })]
    LengthTooSmall { length: u8, auth: bool, min: u8 },
    #[error("Length {length} beyond the {payload} octets received")]
    LengthExceedsPayload { length: u8, payload: usize },
    #[error("Detect Mult is zero")]
    ZeroDetectMult,
    #[error("Multipoint (M) bit set")]
    MultipointSet,
    #[error("My Discriminator is zero")]
    ZeroMyDiscriminator,
    #[error("Your Discriminator is zero in state {0}")]
    ZeroYourDiscriminator(State),
    #[error("Auth Len {auth_len} but {available} octets follow the mandatory section")]
    AuthLengthMismatch { auth_len: u8, available: usize },
    #[error("unknown Auth Type {0}")]
    UnknownAuthType(u8),
    #[error("Auth Len {len} is wrong for {auth_type}")]
    BadAuthLength { auth_type: AuthType, len: u8 },
}

impl Packet {
    /// The Length field this packet encodes with.
    pub fn wire_len(&self) -> usize {
        MANDATORY_LEN + self.auth.as_ref().map_or(0, Auth::wire_len)
    }

    /// Decodes one UDP payload (§6.8.6, the checks about the packet
    /// itself). Octets past the Length field are ignored.
    pub fn decode(payload: &[u8]) -> Result<Packet, DecodeError> {
        let Some(&b0) = payload.first() else {
            return Err(DecodeError::Truncated { len: 0 });
        };
        let version = b0 >> 5;
        if version != VERSION {
            return Err(DecodeError::BadVersion(version));
        }
        if payload.len() < 4 {
            return Err(DecodeError::Truncated { len: payload.len() });
        }
        let b1 = payload[1];
        let has_auth = b1 & 0x04 != 0;
        let length = payload[3];
        let min = if has_auth {
            MIN_AUTH_LEN
        } else {
            MANDATORY_LEN
        };
        if usize::from(length) < min {
            return Err(DecodeError::LengthTooSmall {
                length,
                auth: has_auth,
                min: min as u8,
            });
        }
        if usize::from(length) > payload.len() {
            return Err(DecodeError::LengthExceedsPayload {
                length,
                payload: payload.len(),
            });
        }
        let bytes = &payload[..usize::from(length)];
        let word = |at: usize| {
            u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
        };
        let state = State::from_code(b1 >> 6);
        let detect_mult = bytes[2];
        if detect_mult == 0 {
            return Err(DecodeError::ZeroDetectMult);
        }
        if b1 & 0x01 != 0 {
            return Err(DecodeError::MultipointSet);
        }
        let my_discriminator = word(4);
        if my_discriminator == 0 {
            return Err(DecodeError::ZeroMyDiscriminator);
        }
        let your_discriminator = word(8);
        if your_discriminator == 0 && !matches!(state, State::Down | State::AdminDown) {
            return Err(DecodeError::ZeroYourDiscriminator(state));
        }
        // Without the A bit, octets past the mandatory section inside Length
        // are ignored: §6.8.6 sets only a lower bound.
        let auth = if has_auth {
            let section = &bytes[MANDATORY_LEN..];
            let auth_len = section[1];
            if usize::from(auth_len) != section.len() {
                return Err(DecodeError::AuthLengthMismatch {
                    auth_len,
                    available: section.len(),
                });
            }
            Some(Auth::decode(section)?)
        } else {
            None
        };
        Ok(Packet {
            diag: Diag::from(b0),
            state,
            poll: b1 & 0x20 != 0,
            fin: b1 & 0x10 != 0,
            control_plane_independent: b1 & 0x08 != 0,
            demand: b1 & 0x02 != 0,
            detect_mult,
            my_discriminator,
            your_discriminator,
            desired_min_tx_us: word(12),
            required_min_rx_us: word(16),
            required_min_echo_rx_us: word(20),
            auth,
        })
    }

    /// Appends the packet's wire form to `out`. A packet that breaks a
    /// §6.8.6 rule (Detect Mult 0, My Discriminator 0, ...) encodes to bytes
    /// that [`Packet::decode`] and every peer discard.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        let flag = |on: bool, bit: u8| if on { bit } else { 0 };
        out.push((VERSION << 5) | self.diag.code());
        out.push(
            (self.state.code() << 6)
                | flag(self.poll, 0x20)
                | flag(self.fin, 0x10)
                | flag(self.control_plane_independent, 0x08)
                | flag(self.auth.is_some(), 0x04)
                | flag(self.demand, 0x02),
        );
        out.push(self.detect_mult);
        out.push(self.wire_len() as u8);
        for w in [
            self.my_discriminator,
            self.your_discriminator,
            self.desired_min_tx_us,
            self.required_min_rx_us,
            self.required_min_echo_rx_us,
        ] {
            out.extend_from_slice(&w.to_be_bytes());
        }
        if let Some(auth) = &self.auth {
            auth.encode(out);
        }
    }

    /// The packet's wire form.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.wire_len());
        self.encode_into(&mut out);
        out
    }
}
