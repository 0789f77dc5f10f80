//! open_clip's text clean-up, reimplemented: `ftfy.fix_text`, `html.unescape` twice, whitespace
//! collapsing and lower-casing, applied before the tokenizer.json pipeline for OpenCLIP-style models.
//!
//! From ftfy this keeps the character-level fixes (C1 controls read as Windows-1252, Latin
//! ligatures, full/half-width forms, curly quotes, terminal escapes, control characters, NFC) and
//! its HTML unescaping rule (on, unless a line with '<' has been seen). It does not repair
//! mojibake (text decoded with the wrong encoding): such input tokenises as it stands. HTML
//! unescaping knows numeric references and the named entities in `ENTITIES` (Latin-1 and common
//! punctuation); other names stay as written, where Python would decode them.

use unicode_normalization::UnicodeNormalization;

/// Text as open_clip's `SimpleTokenizer` sees it before its regex split.
pub fn clean_openclip(text: &str) -> String {
    let fixed = fix_text(text);
    let unescaped = html_unescape(&html_unescape(&fixed));
    unescaped
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

/// Most `fix_once` passes per line. ftfy repeats until nothing changes, but each pass removes
/// only one level of HTML escaping, so `&amp;amp;amp;...` would cost one pass over the whole line
/// per level (quadratic: minutes for 256 KiB). Real text needs two or three passes; deeper
/// nesting keeps its remaining `amp;`s.
const MAX_FIX_PASSES: usize = 8;

/// ftfy's `fix_text`: line by line, each line fixed again until it no longer changes (at most
/// `MAX_FIX_PASSES` times).
fn fix_text(text: &str) -> String {
    let mut unescape = true;
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        unescape &= !line.contains('<');
        let mut current = line.to_string();
        for _ in 0..MAX_FIX_PASSES {
            let next = fix_once(&current, unescape);
            if next == current {
                break;
            }
            current = next;
        }
        out.push_str(&current);
    }
    out
}

fn fix_once(text: &str, unescape: bool) -> String {
    let text = if unescape {
        html_unescape(text)
    } else {
        text.to_string()
    };
    let mut mapped = String::with_capacity(text.len());
    for c in text.chars() {
        for d in ligature(c1_control(c)).chars() {
            for e in width(d).chars() {
                mapped.push(uncurl(e));
            }
        }
    }
    let no_escapes = remove_terminal_escapes(&mapped);
    no_escapes
        .chars()
        .filter(|&c| !is_removed_control(c))
        .nfc()
        .collect()
}

/// U+0080..U+009F are almost always Windows-1252 bytes decoded as Latin-1.
fn c1_control(c: char) -> char {
    let code = c as u32;
    if (0x80..=0x9F).contains(&code) {
        cp1252(code).unwrap_or(c)
    } else {
        c
    }
}

/// Windows-1252 bytes 0x80..0x9F; None for the five undefined ones.
fn cp1252(byte: u32) -> Option<char> {
    const HIGH: [u16; 32] = [
        0x20AC, 0, 0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021, 0x02C6, 0x2030, 0x0160, 0x2039,
        0x0152, 0, 0x017D, 0, 0, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022, 0x2013, 0x2014, 0x02DC,
        0x2122, 0x0161, 0x203A, 0x0153, 0, 0x017E, 0x0178,
    ];
    let mapped = *HIGH.get(byte.checked_sub(0x80)? as usize)?;
    if mapped == 0 {
        None
    } else {
        char::from_u32(u32::from(mapped))
    }
}

fn ligature(c: char) -> String {
    let s = match c {
        'Ĳ' => "IJ",
        'ĳ' => "ij",
        'ŉ' => "ʼn",
        'Ǳ' => "DZ",
        'ǲ' => "Dz",
        'ǳ' => "dz",
        'Ǆ' => "DŽ",
        'ǅ' => "Dž",
        'ǆ' => "dž",
        'Ǉ' => "LJ",
        'ǈ' => "Lj",
        'ǉ' => "lj",
        'Ǌ' => "NJ",
        'ǋ' => "Nj",
        'ǌ' => "nj",
        'ﬀ' => "ff",
        'ﬁ' => "fi",
        'ﬂ' => "fl",
        'ﬃ' => "ffi",
        'ﬄ' => "ffl",
        'ﬅ' => "ſt",
        'ﬆ' => "st",
        _ => return c.to_string(),
    };
    s.to_string()
}

/// Full-width and half-width forms to their usual width (NFKC of U+FF01..U+FFEF), and the
/// ideographic space to a space.
fn width(c: char) -> String {
    match c as u32 {
        0x3000 => " ".to_string(),
        0xFF01..=0xFFEF => std::iter::once(c).nfkc().collect(),
        _ => c.to_string(),
    }
}

fn uncurl(c: char) -> char {
    match c {
        '\u{02BC}' | '\u{2018}'..='\u{201B}' => '\'',
        '\u{201C}'..='\u{201F}' => '"',
        _ => c,
    }
}

/// Removes ANSI escapes `ESC [ digits-and-semicolons letter`.
fn remove_terminal_escapes(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = rest.find("\u{1b}[") {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 2..];
        let params = after.len()
            - after
                .trim_start_matches(|c: char| c.is_ascii_digit() || c == ';')
                .len();
        match after[params..].chars().next() {
            Some(c) if c.is_ascii_alphabetic() => rest = &after[params + 1..],
            _ => {
                out.push_str("\u{1b}[");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

fn is_removed_control(c: char) -> bool {
    matches!(c as u32,
        0x00..=0x08 | 0x0B | 0x0E..=0x1F | 0x7F | 0x206A..=0x206F | 0xFEFF | 0xFFF9..=0xFFFC)
}

/// Python's `html.unescape` for numeric references and the entities of `ENTITIES`.
pub fn html_unescape(text: &str) -> String {
    if !text.contains('&') {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = rest.find('&') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        let (replacement, used) = if after.starts_with('#') {
            numeric_reference(after)
        } else {
            named_reference(after)
        };
        match replacement {
            Some(r) => {
                out.push_str(&r);
                rest = &after[used..];
            }
            None => {
                out.push('&');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// `#123;` or `#x1F600;` (semicolon optional) after the '&'; returns the text and bytes used.
fn numeric_reference(after: &str) -> (Option<String>, usize) {
    let hex = after[1..].starts_with(['x', 'X']);
    let start = if hex { 2 } else { 1 };
    let digits = after[start..]
        .chars()
        .take_while(|c| {
            if hex {
                c.is_ascii_hexdigit()
            } else {
                c.is_ascii_digit()
            }
        })
        .count();
    if digits == 0 {
        return (None, 0);
    }
    let end = start + digits;
    let used = end + usize::from(after[end..].starts_with(';'));
    let value =
        u32::from_str_radix(&after[start..end], if hex { 16 } else { 10 }).unwrap_or(u32::MAX);
    (Some(code_point_text(value)), used)
}

/// What Python's html.unescape makes of a numeric reference.
fn code_point_text(value: u32) -> String {
    const REPLACEMENT: &str = "\u{FFFD}";
    match value {
        0 => REPLACEMENT.to_string(),
        0x0D => "\r".to_string(),
        0x80..=0x9F => cp1252(value)
            .or(char::from_u32(value))
            .map(String::from)
            .unwrap_or_default(),
        0xD800..=0xDFFF | 0x110000.. => REPLACEMENT.to_string(),
        0x01..=0x08 | 0x0B | 0x0E..=0x1F | 0x7F | 0xFDD0..=0xFDEF => String::new(),
        v if v & 0xFFFE == 0xFFFE => String::new(),
        v => char::from_u32(v).map(String::from).unwrap_or_default(),
    }
}

/// A named reference after the '&': the full name with ';', else the longest legacy name that
/// Python accepts without one.
fn named_reference(after: &str) -> (Option<String>, usize) {
    let name_len = after
        .char_indices()
        .find(|&(i, c)| i >= 32 || matches!(c, '\t' | '\n' | '\x0C' | ' ' | '<' | '&' | '#' | ';'))
        .map_or(after.len(), |(i, _)| i);
    let name = &after[..name_len];
    if after[name_len..].starts_with(';') {
        if let Some(&(_, c, _)) = ENTITIES.iter().find(|(n, _, _)| *n == name) {
            return (Some(c.to_string()), name_len + 1);
        }
    }
    for len in (2..=name_len.min(6)).rev() {
        let Some(prefix) = name.get(..len) else {
            continue;
        };
        if let Some(&(_, c, _)) = ENTITIES
            .iter()
            .find(|(n, _, legacy)| *legacy && *n == prefix)
        {
            return (Some(c.to_string()), len);
        }
    }
    (None, 0)
}

/// (name, character, accepted without ';' by HTML5 as a legacy name).
#[rustfmt::skip]
const ENTITIES: &[(&str, char, bool)] = &[
    ("amp", '&', true), ("AMP", '&', true), ("lt", '<', true), ("LT", '<', true), ("gt", '>', true),
    ("GT", '>', true), ("quot", '"', true), ("QUOT", '"', true), ("apos", '\'', false),
    ("COPY", '©', true), ("REG", '®', true), ("nbsp", '\u{A0}', true), ("iexcl", '¡', true),
    ("cent", '¢', true), ("pound", '£', true), ("curren", '¤', true), ("yen", '¥', true),
    ("brvbar", '¦', true), ("sect", '§', true), ("uml", '¨', true), ("copy", '©', true),
    ("ordf", 'ª', true), ("laquo", '«', true), ("not", '¬', true), ("shy", '\u{AD}', true),
    ("reg", '®', true), ("macr", '¯', true), ("deg", '°', true), ("plusmn", '±', true),
    ("sup2", '²', true), ("sup3", '³', true), ("acute", '´', true), ("micro", 'µ', true),
    ("para", '¶', true), ("middot", '·', true), ("cedil", '¸', true), ("sup1", '¹', true),
    ("ordm", 'º', true), ("raquo", '»', true), ("frac14", '¼', true), ("frac12", '½', true),
    ("frac34", '¾', true), ("iquest", '¿', true), ("Agrave", 'À', true), ("Aacute", 'Á', true),
    ("Acirc", 'Â', true), ("Atilde", 'Ã', true), ("Auml", 'Ä', true), ("Aring", 'Å', true),
    ("AElig", 'Æ', true), ("Ccedil", 'Ç', true), ("Egrave", 'È', true), ("Eacute", 'É', true),
    ("Ecirc", 'Ê', true), ("Euml", 'Ë', true), ("Igrave", 'Ì', true), ("Iacute", 'Í', true),
    ("Icirc", 'Î', true), ("Iuml", 'Ï', true), ("ETH", 'Ð', true), ("Ntilde", 'Ñ', true),
    ("Ograve", 'Ò', true), ("Oacute", 'Ó', true), ("Ocirc", 'Ô', true), ("Otilde", 'Õ', true),
    ("Ouml", 'Ö', true), ("times", '×', true), ("Oslash", 'Ø', true), ("Ugrave", 'Ù', true),
    ("Uacute", 'Ú', true), ("Ucirc", 'Û', true), ("Uuml", 'Ü', true), ("Yacute", 'Ý', true),
    ("THORN", 'Þ', true), ("szlig", 'ß', true), ("agrave", 'à', true), ("aacute", 'á', true),
    ("acirc", 'â', true), ("atilde", 'ã', true), ("auml", 'ä', true), ("aring", 'å', true),
    ("aelig", 'æ', true), ("ccedil", 'ç', true), ("egrave", 'è', true), ("eacute", 'é', true),
    ("ecirc", 'ê', true), ("euml", 'ë', true), ("igrave", 'ì', true), ("iacute", 'í', true),
    ("icirc", 'î', true), ("iuml", 'ï', true), ("eth", 'ð', true), ("ntilde", 'ñ', true),
    ("ograve", 'ò', true), ("oacute", 'ó', true), ("ocirc", 'ô', true), ("otilde", 'õ', true),
    ("ouml", 'ö', true), ("divide", '÷', true), ("oslash", 'ø', true), ("ugrave", 'ù', true),
    ("uacute", 'ú', true), ("ucirc", 'û', true), ("uuml", 'ü', true), ("yacute", 'ý', true),
    ("thorn", 'þ', true), ("yuml", 'ÿ', true), ("OElig", 'Œ', false), ("oelig", 'œ', false),
    ("Scaron", 'Š', false), ("scaron", 'š', false), ("Yuml", 'Ÿ', false), ("fnof", 'ƒ', false),
    ("circ", 'ˆ', false), ("tilde", '˜', false), ("ensp", '\u{2002}', false),
    ("emsp", '\u{2003}', false), ("thinsp", '\u{2009}', false), ("zwnj", '\u{200C}', false),
    ("zwj", '\u{200D}', false), ("ndash", '–', false), ("mdash", '—', false), ("lsquo", '‘', false),
    ("rsquo", '’', false), ("sbquo", '‚', false), ("ldquo", '“', false), ("rdquo", '”', false),
    ("bdquo", '„', false), ("dagger", '†', false), ("Dagger", '‡', false), ("bull", '•', false),
    ("hellip", '…', false), ("permil", '‰', false), ("prime", '′', false), ("Prime", '″', false),
    ("lsaquo", '‹', false), ("rsaquo", '›', false), ("euro", '€', false), ("trade", '™', false),
    ("larr", '←', false), ("rarr", '→', false), ("uarr", '↑', false), ("darr", '↓', false),
    ("hearts", '♥', false), ("star", '☆', false),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unescape_follows_python() {
        assert_eq!(html_unescape("a &amp; b &ampx &amp"), "a & b &x &");
        assert_eq!(
            html_unescape("&#39;&#x1F600;&#0;&#128;&#x81;&#1;"),
            "'😀\u{FFFD}€\u{81}"
        );
        assert_eq!(html_unescape("&unknown; &#; &"), "&unknown; &#; &");
        assert_eq!(html_unescape("&copy2 &eacute;t&eacute"), "©2 été");
    }

    #[test]
    fn ftfy_subset() {
        assert_eq!(clean_openclip("“Hi” ﬁne ＡＢ\u{3000}x"), "\"hi\" fine ab x");
        assert_eq!(
            clean_openclip("\u{1b}[1;31mred\u{1b}[0m \u{93}q\u{94}"),
            "red \"q\""
        );
        assert_eq!(clean_openclip("x < &ldquo;y&rdquo;"), "x < “y”");
        assert_eq!(clean_openclip("&ldquo;y&rdquo; &amp;amp;amp;"), "\"y\" &");
        assert_eq!(clean_openclip(" \u{feff}\u{0}\t"), "");
    }

    #[test]
    fn nested_escapes_take_bounded_passes() {
        // Before the cap this ran one pass per level: about 65 535 passes over 256 KiB.
        let levels = 65_535;
        let text = format!("&{}", "amp;".repeat(levels));
        let left = levels - MAX_FIX_PASSES - 2; // fix_text's passes, then two html_unescape
        assert_eq!(clean_openclip(&text), format!("&{}", "amp;".repeat(left)));
    }

    // Fuzzing (fuzz/README.md): any text, and text built from the pieces the clean-up parses.
    mod fuzz {
        use super::*;
        use proptest::prelude::*;

        fn pieces() -> impl Strategy<Value = String> {
            let piece = prop::sample::select(vec![
                "&", "amp;", "&#", "x", "1F600", "39", ";", "#", "lt", "<", "\n", "\u{1b}[", "31m",
                "\u{93}", "ﬁ", "Ａ", "\u{3000}", "“", "\u{feff}", "\u{0}", "é", "e\u{301}", " ",
            ]);
            prop::collection::vec(piece, 0..200).prop_map(|p| p.concat())
        }

        proptest! {
            #[test]
            fn clean_any_text(text in any::<String>()) {
                let cleaned = clean_openclip(&text);
                prop_assert!(!cleaned.starts_with(' ') && !cleaned.ends_with(' '));
            }

            #[test]
            fn clean_escape_soup(text in pieces()) {
                let cleaned = clean_openclip(&text);
                prop_assert!(!cleaned.contains('\u{feff}'), "BOM left in {:?}", cleaned);
            }

            #[test]
            fn nesting_strips_a_bounded_number_of_levels(levels in 0usize..3000) {
                let text = format!("&{}", "amp;".repeat(levels));
                let left = levels.saturating_sub(MAX_FIX_PASSES + 2);
                prop_assert_eq!(clean_openclip(&text), format!("&{}", "amp;".repeat(left)));
            }
        }
    }
}
