//! Z85 (RFC 32): 4 bytes to 5 printable characters, for keys in text.

use crate::error::KeyError;

const ALPHABET: &[u8; 85] =
    b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#";

/// Character → value, 0xFF for characters outside the alphabet.
const DECODE: [u8; 256] = {
    let mut t = [0xFFu8; 256];
    let mut i = 0;
    while i < 85 {
        t[ALPHABET[i] as usize] = i as u8;
        i += 1;
    }
    t
};

/// Encodes bytes whose length is a multiple of 4.
pub fn encode(data: &[u8]) -> Result<String, KeyError> {
    if !data.len().is_multiple_of(4) {
        return Err(KeyError::Z85Length);
    }
    let mut out = String::with_capacity(data.len() / 4 * 5);
    for chunk in data.chunks_exact(4) {
        let mut value = u32::from_be_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        let mut group = [0u8; 5];
        for slot in group.iter_mut().rev() {
            *slot = ALPHABET[(value % 85) as usize];
            value /= 85;
        }
        // The alphabet is ASCII.
        out.extend(group.iter().map(|&c| c as char));
    }
    Ok(out)
}

/// Decodes text whose length is a multiple of 5, refusing characters
/// outside the alphabet and groups whose value exceeds 2^32 - 1.
pub fn decode(text: &str) -> Result<Vec<u8>, KeyError> {
    let bytes = text.as_bytes();
    if !bytes.len().is_multiple_of(5) {
        return Err(KeyError::Z85Length);
    }
    let mut out = Vec::with_capacity(bytes.len() / 5 * 4);
    for group in bytes.chunks_exact(5) {
        let mut value: u64 = 0;
        for &c in group {
            let d = DECODE[c as usize];
            if d == 0xFF {
                return Err(KeyError::Z85Character);
            }
            value = value * 85 + u64::from(d);
        }
        let value = u32::try_from(value).map_err(|_| KeyError::Z85Overflow)?;
        out.extend_from_slice(&value.to_be_bytes());
    }
    Ok(out)
}

/// Decodes exactly 32 bytes (a key) from 40 characters.
pub fn decode_key(text: &str) -> Result<[u8; 32], KeyError> {
    if text.len() != 40 {
        return Err(KeyError::KeyLength(text.len()));
    }
    let v = zeroize::Zeroizing::new(decode(text)?);
    let mut key = [0u8; 32];
    key.copy_from_slice(&v);
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc32_vector() {
        let bytes = [0x86, 0x4F, 0xD2, 0x6F, 0xB5, 0x59, 0xF7, 0x5B];
        assert_eq!(encode(&bytes).unwrap(), "HelloWorld");
        assert_eq!(decode("HelloWorld").unwrap(), bytes);
    }

    #[test]
    fn libzmq_test_keys() {
        // The server key pair from libzmq's test_security_curve.
        let public = "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7";
        let k = decode_key(public).unwrap();
        assert_eq!(encode(&k).unwrap(), public);
    }

    #[test]
    fn validation() {
        assert_eq!(encode(&[1, 2, 3]), Err(KeyError::Z85Length));
        assert_eq!(decode("Hell"), Err(KeyError::Z85Length));
        assert_eq!(decode("Hell~"), Err(KeyError::Z85Character));
        assert_eq!(decode("Hell\"").unwrap_err(), KeyError::Z85Character);
        // "#####" is 85^5 - 1, above 2^32 - 1.
        assert_eq!(decode("#####"), Err(KeyError::Z85Overflow));
        // The largest valid group.
        assert_eq!(decode("%nSc0").unwrap(), [0xFF; 4]);
        assert_eq!(decode("%nSc1"), Err(KeyError::Z85Overflow));
        assert_eq!(decode_key("HelloWorld"), Err(KeyError::KeyLength(10)));
    }

    #[test]
    fn round_trip_all_byte_values() {
        let data: Vec<u8> = (0..=255).collect();
        assert_eq!(decode(&encode(&data).unwrap()).unwrap(), data);
    }
}
