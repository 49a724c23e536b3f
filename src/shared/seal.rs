//! The seal on everything verdict puts in the shared store: an HMAC-SHA256 under the
//! fleet's secret, which the store never holds.
//!
//! Takes: the secret (read once from a file or the environment) and the bytes to seal,
//! with a label that says what they are and where they are kept. Returns: a 32-byte tag,
//! a verification in constant time, and the store's key names for a cache key (a keyed
//! digest, so the store cannot be used to test guesses of a credential offline).
//! Must never: log or store the secret, accept a value sealed for another key or another
//! purpose, or compare tags in variable time.

use ring::hmac;

/// A MAC's length in bytes.
pub const TAG_LEN: usize = 32;

/// The fleet's sealing key.
pub struct Seal {
    key: hmac::Key,
}

impl std::fmt::Debug for Seal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // never the secret
        f.write_str("Seal")
    }
}

/// What sealed bytes are: a label in every MAC, so a tag made for one purpose never
/// verifies for another.
#[derive(Debug, Clone, Copy)]
pub enum Purpose {
    /// The store key of a cache key.
    KeyName,
    /// A shared decision, bound to its store key.
    Decision,
    /// A revocation entry, bound to the stream it is in.
    Revocation,
}

impl Purpose {
    fn label(self) -> &'static [u8] {
        match self {
            Purpose::KeyName => b"verdict/key/v1\0",
            Purpose::Decision => b"verdict/decision/v1\0",
            Purpose::Revocation => b"verdict/revocation/v1\0",
        }
    }
}

impl Seal {
    pub fn new(secret: &[u8]) -> Seal {
        Seal {
            key: hmac::Key::new(hmac::HMAC_SHA256, secret),
        }
    }

    /// The tag of `parts` for `purpose`. Each part but the last is length-prefixed, so
    /// ("ab", "c") and ("a", "bc") never share a tag.
    pub fn tag(&self, purpose: Purpose, parts: &[&[u8]]) -> [u8; TAG_LEN] {
        let mut context = hmac::Context::with_key(&self.key);
        context.update(purpose.label());
        for part in parts {
            context.update(&(part.len() as u64).to_be_bytes());
            context.update(part);
        }
        let mut out = [0u8; TAG_LEN];
        out.copy_from_slice(context.sign().as_ref());
        out
    }

    /// Whether `tag` is the tag of `parts` for `purpose`, compared in constant time.
    pub fn verify(&self, purpose: Purpose, parts: &[&[u8]], tag: &[u8]) -> bool {
        let expected = self.tag(purpose, parts);
        // Trust decision: the tag is compared in time independent of where it differs
        use subtle::ConstantTimeEq as _;
        expected.len() == tag.len() && bool::from(expected.ct_eq(tag))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tag_verifies_only_for_its_purpose_parts_and_secret() {
        let seal = Seal::new(b"0123456789abcdef0123456789abcdef");
        let tag = seal.tag(Purpose::Decision, &[b"key", b"value"]);
        assert!(seal.verify(Purpose::Decision, &[b"key", b"value"], &tag));
        assert!(!seal.verify(Purpose::Revocation, &[b"key", b"value"], &tag));
        assert!(!seal.verify(Purpose::Decision, &[b"other", b"value"], &tag));
        assert!(!seal.verify(Purpose::Decision, &[b"ke", b"yvalue"], &tag));
        assert!(!seal.verify(Purpose::Decision, &[b"key", b"value"], &tag[..31]));
        let other = Seal::new(b"another secret, as long as the first");
        assert!(!other.verify(Purpose::Decision, &[b"key", b"value"], &tag));
    }
}
