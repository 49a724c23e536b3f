//! The one digest verdict uses: SHA-256.
//!
//! Takes: bytes. Returns: their 32-byte SHA-256. Used for cache keys, static-token
//! digests and the default session id, so that none of them keeps the input.
//! Must never: be replaced by a non-cryptographic hash (cache keys and token digests
//! stand in for credentials).

/// SHA-256 of a byte string.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    let digest = ring::digest::digest(&ring::digest::SHA256, data);
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

/// SHA-256 of byte strings written one after another, without joining them first.
pub fn sha256_of_parts(parts: &[&[u8]]) -> [u8; 32] {
    // Short inputs (a cache key's fingerprint and a token) are joined on the stack and
    // hashed in one call, which costs less than setting up an incremental context.
    let mut joined = [0u8; 512];
    let total: usize = parts.iter().map(|p| p.len()).sum();
    if total <= joined.len() {
        let mut at = 0;
        for part in parts {
            joined[at..at + part.len()].copy_from_slice(part);
            at += part.len();
        }
        return sha256(&joined[..total]);
    }
    let mut context = ring::digest::Context::new(&ring::digest::SHA256);
    for part in parts {
        context.update(part);
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(context.finish().as_ref());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_hash_like_the_joined_whole() {
        assert_eq!(sha256_of_parts(&[b"a", b"", b"bc"]), sha256(b"abc"));
        let long = vec![b'x'; 700];
        assert_eq!(
            sha256_of_parts(&[&long[..300], &long[300..]]),
            sha256(&long)
        );
    }

    #[test]
    fn sha256_matches_the_standard_vector() {
        assert_eq!(
            hex::encode(sha256(b"abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
