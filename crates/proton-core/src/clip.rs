/// How many characters of a user's input an error message quotes.
pub const CLIP_CHARS: usize = 40;

/// Input quoted in an error: at most [`CLIP_CHARS`] characters, then `…`; control
/// characters escaped. A 10 MB value or a 300-character name stays a short, one-line
/// message (and a pasted secret is not echoed whole).
pub fn clip(input: &str) -> String {
    let mut out = String::new();
    for (i, c) in input.chars().enumerate() {
        if i == CLIP_CHARS {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_input_is_cut_with_an_ellipsis_and_stays_one_line() {
        assert_eq!(clip("wg0"), "wg0");
        let long = "é".repeat(300);
        let c = clip(&long);
        assert_eq!(c.chars().count(), CLIP_CHARS + 1);
        assert!(c.ends_with('…'));
        assert_eq!(clip("a\nb\tc"), "a\\nb\\tc");
    }
}
