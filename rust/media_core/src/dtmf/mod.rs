//! DTMF (ITU-T Q.23 tones, RFC 4733 telephone-events): an in-band detector, an in-band
//! generator, and the RFC 4733 payload with receiver and sender state machines.
//!
//! Digits are `char`s: `'0'`–`'9'`, `'*'`, `'#'`, `'A'`–`'D'`, plus [`FLASH`] for hook flash
//! (RFC 4733 event 16, which has no tone).

pub mod goertzel;
pub mod rfc4733;
pub mod tones;

/// The `char` used for hook flash (RFC 4733 event 16).
pub const FLASH: char = '!';

/// Low-group (row) frequencies in Hz (ITU-T Q.23).
pub const ROW_HZ: [f32; 4] = [697.0, 770.0, 852.0, 941.0];
/// High-group (column) frequencies in Hz (ITU-T Q.23).
pub const COL_HZ: [f32; 4] = [1209.0, 1336.0, 1477.0, 1633.0];

/// The keypad by row (low tone) and column (high tone).
const KEYPAD: [[char; 4]; 4] = [
    ['1', '2', '3', 'A'],
    ['4', '5', '6', 'B'],
    ['7', '8', '9', 'C'],
    ['*', '0', '#', 'D'],
];

/// Peak amplitude, in 16-bit linear PCM, of a sine at 0 dBm0: G.711 µ-law's largest code is
/// +3.17 dBm0 at 8159 × 4 = 32636 (ITU-T G.711 Table 2), so 0 dBm0 is 32636 / 10^(3.17/20).
pub const DBM0_PEAK: f32 = 22_662.0;

/// The RFC 4733 event code of a digit (§3.2: 0–9, `*` = 10, `#` = 11, A–D = 12–15, flash = 16).
/// Lower-case `a`–`d` are accepted.
pub fn char_to_event(digit: char) -> Option<u8> {
    match digit {
        '0'..='9' => Some(digit as u8 - b'0'),
        '*' => Some(10),
        '#' => Some(11),
        'A'..='D' => Some(digit as u8 - b'A' + 12),
        'a'..='d' => Some(digit as u8 - b'a' + 12),
        FLASH => Some(16),
        _ => None,
    }
}

/// The digit of an RFC 4733 event code 0–16; `None` for other events.
pub fn event_to_char(event: u8) -> Option<char> {
    match event {
        0..=9 => Some((b'0' + event) as char),
        10 => Some('*'),
        11 => Some('#'),
        12..=15 => Some((b'A' + event - 12) as char),
        16 => Some(FLASH),
        _ => None,
    }
}

/// The (row, column) frequencies of a keypad digit; `None` for flash and non-digits.
pub fn digit_frequencies(digit: char) -> Option<(f32, f32)> {
    let d = digit.to_ascii_uppercase();
    for (r, row) in KEYPAD.iter().enumerate() {
        for (c, &k) in row.iter().enumerate() {
            if k == d {
                return Some((ROW_HZ[r], COL_HZ[c]));
            }
        }
    }
    None
}

/// The digit at keypad row `row` and column `col` (both 0..4).
pub(crate) fn keypad(row: usize, col: usize) -> char {
    KEYPAD[row & 3][col & 3]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_mapping_round_trips() {
        for e in 0..=16u8 {
            let c = event_to_char(e);
            assert!(c.is_some());
            assert_eq!(c.and_then(char_to_event), Some(e));
        }
        assert_eq!(event_to_char(17), None);
        assert_eq!(char_to_event('x'), None);
        assert_eq!(char_to_event('b'), Some(13));
        assert_eq!(digit_frequencies('5'), Some((770.0, 1336.0)));
        assert_eq!(digit_frequencies('#'), Some((941.0, 1477.0)));
        assert_eq!(digit_frequencies(FLASH), None);
    }
}
