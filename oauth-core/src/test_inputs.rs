//! Input strategies for the property tests: the unit tests beside crate-private
//! parsers and `tests/properties.rs` (which includes this file by path) share them.

use proptest::prelude::*;

/// The default number of cases: enough to find a panic, small enough that every
/// property test together runs in a few seconds in a debug build.
pub(crate) const CASES: u32 = 256;

/// Fragments parsers trip on: `%` sequences (broken, overlong, invalid UTF-8),
/// separators, control characters, non-ASCII, white space that is not ASCII, and
/// pieces of URIs and addresses.
const PIECES: &[&str] = &[
    "%",
    "%2",
    "%25",
    "%zz",
    "%FF",
    "%C3",
    "%C3%A9",
    "%00",
    "%2F",
    "%3A",
    "+",
    "&",
    "=",
    ";",
    ",",
    "\0",
    "\u{1}",
    "\t",
    "\n",
    "\r\n",
    "\u{7f}",
    "\u{85}",
    "\u{a0}",
    "\u{3000}",
    "\u{e9}",
    "\u{130}",
    "\u{212a}",
    "\u{1f600}",
    "\u{fffd}",
    "/",
    "//",
    "\\",
    "@",
    ":",
    "#",
    "?",
    ".",
    "..",
    "-",
    "_",
    "~",
    "\"",
    "[",
    "]",
    " ",
    "a",
    "Z",
    "0",
    "9",
    "1e3",
    "127.0.0.1",
    "[::1]",
    "http://",
    "https://",
    "example.com",
];

/// Arbitrary text: any characters, concatenated fragments from [`PIECES`], or one
/// fragment repeated up to about 4 KiB.
pub(crate) fn nasty_string() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        prop::collection::vec(prop::sample::select(PIECES), 0..48).prop_map(|v| v.concat()),
        (prop::sample::select(PIECES), 0usize..4096)
            .prop_map(|(piece, len)| piece.repeat(len / piece.len())),
    ]
}

/// Arbitrary bytes: random, the UTF-8 of [`nasty_string`], or up to 4 KiB of noise.
pub(crate) fn nasty_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..64),
        nasty_string().prop_map(String::into_bytes),
        prop::collection::vec(any::<u8>(), 0..4096),
    ]
}
