//! A SentencePiece BPE model (`bpe.model`) read and run in pure Rust.
//!
//! The file is a serialised `sentencepiece.ModelProto`; only the fields the
//! encoder needs are decoded, by hand: the pieces (string, score, type), the
//! trainer spec's model type, special ids and `byte_fallback`, and the
//! normaliser spec (name, precompiled character map, `add_dummy_prefix`,
//! `remove_extra_whitespaces`, `escape_whitespaces`).
//!
//! [`SentencePiece::encode`] follows `SentencePieceProcessor.Encode` of the
//! reference library (sentencepiece 0.2) step by step: the normaliser (the
//! precompiled darts-clone character map such as `nmt_nfkc`, whitespace
//! handling and the `▁` escape), the BPE merge loop (highest score first,
//! leftmost on ties, user-defined pieces kept whole, unused pieces split
//! back), then the unknown pieces: a run of unknown characters becomes one
//! piece with the unknown id, or, with `byte_fallback`, one `<0xXX>` piece per
//! UTF-8 byte.
//!
//! Only BPE models are accepted; unigram, word and char models, and models
//! that put the whitespace after the word (`treat_whitespace_as_suffix`), are
//! rejected with [`Error::Format`].

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap};
use std::path::Path;

use crate::indextts2::Error;

/// The whitespace marker SentencePiece puts in place of `' '` (U+2581).
pub const SPACE_SYMBOL: &str = "\u{2581}";

/// What a piece of the vocabulary is (`ModelProto.SentencePiece.Type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PieceKind {
    /// An ordinary piece, produced by merges.
    Normal,
    /// The unknown piece (`<unk>`).
    Unknown,
    /// A control piece (`<s>`, `</s>`): never produced from text.
    Control,
    /// A user-defined piece: matched whole in the text, never merged.
    UserDefined,
    /// A piece that is split back into the two pieces it was merged from.
    Unused,
    /// A byte piece `<0xXX>` (models trained with `byte_fallback`).
    Byte,
}

impl PieceKind {
    fn from_proto(value: u64) -> Option<Self> {
        Some(match value {
            1 => Self::Normal,
            2 => Self::Unknown,
            3 => Self::Control,
            4 => Self::UserDefined,
            5 => Self::Unused,
            6 => Self::Byte,
            _ => return None,
        })
    }

    /// Whether the encoder may produce the piece by merging (the library's
    /// `pieces_` map, as opposed to its reserved ids).
    fn is_mergeable(self) -> bool {
        matches!(self, Self::Normal | Self::UserDefined | Self::Unused)
    }
}

/// One piece of the vocabulary.
#[derive(Debug, Clone, PartialEq)]
pub struct Piece {
    /// The piece's text (`▁` for a space).
    pub piece: String,
    /// Its score: for BPE, the merge priority (higher merges first).
    pub score: f32,
    /// Its type.
    pub kind: PieceKind,
}

/// The normaliser spec and its compiled character map.
#[derive(Debug, Clone)]
struct NormalizerSpec {
    name: String,
    charsmap: Option<CharsMap>,
    add_dummy_prefix: bool,
    remove_extra_whitespaces: bool,
    escape_whitespaces: bool,
}

impl Default for NormalizerSpec {
    fn default() -> Self {
        Self {
            name: String::new(),
            charsmap: None,
            add_dummy_prefix: true,
            remove_extra_whitespaces: true,
            escape_whitespaces: true,
        }
    }
}

/// A precompiled character map: a darts-clone double array whose leaves
/// point into a blob of NUL-terminated replacement strings.
#[derive(Debug, Clone)]
struct CharsMap {
    units: Vec<u32>,
    normalized: Vec<u8>,
}

impl CharsMap {
    fn parse(blob: &[u8], path: &str) -> Result<Self, Error> {
        let bad = |reason: &str| Error::Format {
            path: path.to_string(),
            reason: format!("precompiled_charsmap: {reason}"),
        };
        let head: [u8; 4] = blob
            .get(..4)
            .and_then(|h| h.try_into().ok())
            .ok_or_else(|| bad("shorter than its 4-byte header"))?;
        let trie_len = u32::from_le_bytes(head) as usize;
        let rest = &blob[4..];
        if trie_len > rest.len() || !trie_len.is_multiple_of(4) {
            return Err(bad(&format!(
                "trie size {trie_len} does not fit the {} bytes that follow",
                rest.len()
            )));
        }
        let units = rest[..trie_len]
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        Ok(Self {
            units,
            normalized: rest[trie_len..].to_vec(),
        })
    }

    /// darts-clone `commonPrefixSearch`, keeping the longest match: its
    /// length and its replacement. Out-of-range units (a corrupt map) end
    /// the search instead of panicking.
    fn longest_prefix(&self, key: &[u8]) -> Option<(usize, &[u8])> {
        let unit = |pos: usize| self.units.get(pos).copied();
        let offset = |u: u32| ((u >> 10) << ((u & (1 << 9)) >> 6)) as usize;
        let mut pos = offset(unit(0)?);
        let mut best = None;
        for (i, &byte) in key.iter().enumerate() {
            pos ^= byte as usize;
            let u = unit(pos)?;
            if u & ((1 << 31) | 0xff) != byte as u32 {
                break;
            }
            pos ^= offset(u);
            if (u >> 8) & 1 == 1 {
                let value = (unit(pos)? & 0x7fff_ffff) as usize;
                if let Some(tail) = self.normalized.get(value..) {
                    let end = tail.iter().position(|&b| b == 0).unwrap_or(tail.len());
                    best = Some((i + 1, &tail[..end]));
                }
            }
        }
        best
    }
}

/// A SentencePiece BPE model and its encoder.
///
/// ```no_run
/// use models::indextts2::text::SentencePiece;
///
/// let sp = SentencePiece::open("checkpoints/bpe.model")?;
/// let pieces = sp.encode_pieces("HELLO WORLD");
/// let ids = sp.encode_ids("HELLO WORLD");
/// assert_eq!(ids.len(), pieces.len());
/// assert_eq!(sp.piece_to_id(&pieces[0]), ids[0]);
/// # Ok::<(), models::indextts2::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct SentencePiece {
    pieces: Vec<Piece>,
    mergeable: HashMap<String, u32>,
    reserved: HashMap<String, u32>,
    user_defined: Vec<String>,
    unk_id: u32,
    bos_id: i32,
    eos_id: i32,
    pad_id: i32,
    byte_fallback: bool,
    normalizer: NormalizerSpec,
}

/// Little protobuf reader: just what `ModelProto` needs.
struct Proto<'a> {
    buf: &'a [u8],
    pos: usize,
}

enum Field<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    Fixed32(u32),
    Fixed64,
}

impl<'a> Proto<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    fn varint(&mut self) -> Result<u64, String> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = *self
                .buf
                .get(self.pos)
                .ok_or_else(|| format!("truncated varint at byte {}", self.pos))?;
            self.pos += 1;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(format!("varint longer than 10 bytes at byte {}", self.pos))
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.buf.len())
            .ok_or_else(|| {
                format!(
                    "truncated: a field of {n} bytes at byte {} runs past the end ({} bytes)",
                    self.pos,
                    self.buf.len()
                )
            })?;
        let out = &self.buf[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    /// The next field number and value, or `None` at the end.
    fn next(&mut self) -> Result<Option<(u64, Field<'a>)>, String> {
        if self.pos >= self.buf.len() {
            return Ok(None);
        }
        let key = self.varint()?;
        let number = key >> 3;
        if number == 0 {
            return Err(format!("field number 0 at byte {}", self.pos));
        }
        let field = match key & 7 {
            0 => Field::Varint(self.varint()?),
            1 => {
                self.take(8)?;
                Field::Fixed64
            }
            2 => {
                let len = usize::try_from(self.varint()?).map_err(|e| e.to_string())?;
                Field::Bytes(self.take(len)?)
            }
            5 => {
                let b = self.take(4)?;
                Field::Fixed32(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            }
            wire => return Err(format!("unsupported wire type {wire} at byte {}", self.pos)),
        };
        Ok(Some((number, field)))
    }
}

fn utf8(bytes: &[u8], what: &str) -> Result<String, String> {
    String::from_utf8(bytes.to_vec()).map_err(|_| format!("{what} is not UTF-8"))
}

fn wrong(what: &str) -> String {
    format!("{what} has the wrong wire type")
}

fn parse_piece(buf: &[u8]) -> Result<Piece, String> {
    let mut p = Proto::new(buf);
    let mut piece = Piece {
        piece: String::new(),
        score: 0.0,
        kind: PieceKind::Normal,
    };
    while let Some((number, field)) = p.next()? {
        match (number, field) {
            (1, Field::Bytes(b)) => piece.piece = utf8(b, "a piece")?,
            (2, Field::Fixed32(bits)) => piece.score = f32::from_bits(bits),
            (3, Field::Varint(v)) => {
                piece.kind =
                    PieceKind::from_proto(v).ok_or_else(|| format!("unknown piece type {v}"))?
            }
            (1..=3, _) => return Err(wrong("a piece field")),
            _ => {}
        }
    }
    Ok(piece)
}

struct TrainerSpec {
    model_type: u64,
    byte_fallback: bool,
    treat_whitespace_as_suffix: bool,
    unk_id: i32,
    bos_id: i32,
    eos_id: i32,
    pad_id: i32,
}

fn parse_trainer(buf: &[u8]) -> Result<TrainerSpec, String> {
    let mut spec = TrainerSpec {
        model_type: 1,
        byte_fallback: false,
        treat_whitespace_as_suffix: false,
        unk_id: 0,
        bos_id: 1,
        eos_id: 2,
        pad_id: -1,
    };
    let mut p = Proto::new(buf);
    while let Some((number, field)) = p.next()? {
        let Field::Varint(v) = field else {
            if matches!(number, 3 | 24 | 35 | 40..=43) {
                return Err(wrong("a trainer_spec field"));
            }
            continue;
        };
        // int32 fields are sign-extended varints: truncation is the decoding.
        let as_i32 = v as i32;
        match number {
            3 => spec.model_type = v,
            24 => spec.treat_whitespace_as_suffix = v != 0,
            35 => spec.byte_fallback = v != 0,
            40 => spec.unk_id = as_i32,
            41 => spec.bos_id = as_i32,
            42 => spec.eos_id = as_i32,
            43 => spec.pad_id = as_i32,
            _ => {}
        }
    }
    Ok(spec)
}

fn parse_normalizer(buf: &[u8], path: &str) -> Result<NormalizerSpec, Error> {
    let fmt = |reason: String| Error::Format {
        path: path.to_string(),
        reason: format!("normalizer_spec: {reason}"),
    };
    let mut spec = NormalizerSpec::default();
    let mut p = Proto::new(buf);
    while let Some((number, field)) = p.next().map_err(fmt)? {
        match (number, field) {
            (1, Field::Bytes(b)) => spec.name = utf8(b, "the name").map_err(fmt)?,
            (2, Field::Bytes(b)) => {
                spec.charsmap = if b.is_empty() {
                    None
                } else {
                    Some(CharsMap::parse(b, path)?)
                }
            }
            (3, Field::Varint(v)) => spec.add_dummy_prefix = v != 0,
            (4, Field::Varint(v)) => spec.remove_extra_whitespaces = v != 0,
            (5, Field::Varint(v)) => spec.escape_whitespaces = v != 0,
            (1..=5, _) => return Err(fmt(wrong("a field"))),
            _ => {}
        }
    }
    Ok(spec)
}

/// The byte length of the UTF-8 character at the start of `s` when it is
/// well formed (the library's `IsValidDecodeUTF8`), `None` otherwise.
fn valid_char_len(s: &[u8]) -> Option<usize> {
    let len = match *s.first()? {
        0x00..=0x7f => 1,
        0xc2..=0xdf => 2,
        0xe0..=0xef => 3,
        0xf0..=0xf4 => 4,
        _ => return None,
    };
    std::str::from_utf8(s.get(..len)?).ok().map(|_| len)
}

/// The library's `OneCharLen`: the length the first byte announces.
fn one_char_len(first: u8) -> usize {
    const TABLE: [usize; 16] = [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4];
    TABLE[(first >> 4) as usize]
}

/// A candidate merge on the agenda: the best score first, then the
/// leftmost (the library's `SymbolPairComparator`).
struct Candidate {
    left: usize,
    right: usize,
    score: f32,
    size: usize,
}

impl PartialEq for Candidate {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Candidate {}
impl PartialOrd for Candidate {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Candidate {
    fn cmp(&self, other: &Self) -> Ordering {
        self.score
            .partial_cmp(&other.score)
            .unwrap_or(Ordering::Equal)
            .then_with(|| other.left.cmp(&self.left))
    }
}

#[derive(Clone, Copy)]
struct Symbol {
    start: usize,
    len: usize,
    prev: Option<usize>,
    next: Option<usize>,
    frozen: bool,
}

impl SentencePiece {
    /// Reads a model file (`bpe.model`).
    ///
    /// Fails with [`Error::Io`] when the file cannot be read and with
    /// [`Error::Format`] (naming the file) when it is not a SentencePiece BPE
    /// model.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, Error> {
        let path = path.as_ref();
        let name = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|source| Error::Io {
            path: name.clone(),
            source,
        })?;
        Self::from_bytes(&bytes, &name)
    }

    /// Reads a serialised model; `name` names it in errors.
    pub fn from_bytes(bytes: &[u8], name: &str) -> Result<Self, Error> {
        let fmt = |reason: String| Error::Format {
            path: name.to_string(),
            reason: format!("not a SentencePiece model: {reason}"),
        };
        let mut pieces = Vec::new();
        let mut trainer = None;
        let mut normalizer = NormalizerSpec::default();
        let mut p = Proto::new(bytes);
        while let Some((number, field)) = p.next().map_err(fmt)? {
            match (number, field) {
                (1, Field::Bytes(b)) => pieces.push(parse_piece(b).map_err(fmt)?),
                (2, Field::Bytes(b)) => trainer = Some(parse_trainer(b).map_err(fmt)?),
                (3, Field::Bytes(b)) => normalizer = parse_normalizer(b, name)?,
                (1..=3, _) => return Err(fmt(wrong("a ModelProto field"))),
                _ => {}
            }
        }
        let trainer = trainer.ok_or_else(|| fmt("no trainer_spec".into()))?;
        if pieces.is_empty() {
            return Err(fmt("no pieces".into()));
        }
        let fmt = |reason: String| Error::Format {
            path: name.to_string(),
            reason,
        };
        if trainer.model_type != 2 {
            let kind = match trainer.model_type {
                1 => "UNIGRAM",
                3 => "WORD",
                4 => "CHAR",
                _ => "unknown",
            };
            return Err(fmt(format!(
                "not a BPE model (model_type {kind}, {})",
                trainer.model_type
            )));
        }
        if trainer.treat_whitespace_as_suffix {
            return Err(fmt("treat_whitespace_as_suffix is not supported".into()));
        }
        let mut mergeable = HashMap::new();
        let mut reserved = HashMap::new();
        let mut user_defined = Vec::new();
        let mut unk_id = None;
        for (i, piece) in pieces.iter().enumerate() {
            let id = u32::try_from(i).map_err(|e| fmt(e.to_string()))?;
            if piece.piece.is_empty() {
                return Err(fmt(format!("piece {id} is empty")));
            }
            let map = if piece.kind.is_mergeable() {
                &mut mergeable
            } else {
                &mut reserved
            };
            if map.insert(piece.piece.clone(), id).is_some() {
                return Err(fmt(format!("piece {:?} is defined twice", piece.piece)));
            }
            match piece.kind {
                PieceKind::UserDefined => user_defined.push(piece.piece.clone()),
                PieceKind::Unknown if unk_id.is_some() => {
                    return Err(fmt("more than one unknown piece".into()));
                }
                PieceKind::Unknown => unk_id = Some(id),
                PieceKind::Byte if !trainer.byte_fallback => {
                    return Err(fmt(format!(
                        "byte piece {:?} although byte_fallback is false",
                        piece.piece
                    )));
                }
                _ => {}
            }
        }
        let unk_id = unk_id.ok_or_else(|| fmt("no unknown piece".into()))?;
        Ok(Self {
            pieces,
            mergeable,
            reserved,
            user_defined,
            unk_id,
            bos_id: trainer.bos_id,
            eos_id: trainer.eos_id,
            pad_id: trainer.pad_id,
            byte_fallback: trainer.byte_fallback,
            normalizer,
        })
    }

    /// The number of pieces (`GetPieceSize`).
    pub fn vocab_size(&self) -> usize {
        self.pieces.len()
    }

    /// All pieces, in id order.
    pub fn pieces(&self) -> &[Piece] {
        &self.pieces
    }

    /// The piece with id `id` (`IdToPiece`), `None` when out of range.
    pub fn id_to_piece(&self, id: u32) -> Option<&str> {
        self.pieces.get(id as usize).map(|p| p.piece.as_str())
    }

    /// The id of `piece` (`PieceToId`): the unknown id when it is not in the
    /// vocabulary.
    pub fn piece_to_id(&self, piece: &str) -> u32 {
        self.reserved
            .get(piece)
            .or_else(|| self.mergeable.get(piece))
            .copied()
            .unwrap_or(self.unk_id)
    }

    /// The unknown piece's id.
    pub fn unk_id(&self) -> u32 {
        self.unk_id
    }

    /// The trainer spec's `bos_id`, `eos_id` and `pad_id` (`-1` when unset).
    pub fn special_ids(&self) -> (i32, i32, i32) {
        (self.bos_id, self.eos_id, self.pad_id)
    }

    /// Whether unknown characters are spelled as UTF-8 byte pieces.
    pub fn byte_fallback(&self) -> bool {
        self.byte_fallback
    }

    /// The normaliser's name in the model (`nmt_nfkc`, `identity`, ...).
    pub fn normalizer_name(&self) -> &str {
        &self.normalizer.name
    }

    /// The longest user-defined piece at the start of `s` (the library's
    /// `PrefixMatcher`): its length and whether one matched; otherwise one
    /// character.
    fn prefix_match(&self, s: &[u8]) -> (usize, bool) {
        let longest = self
            .user_defined
            .iter()
            .filter(|u| s.starts_with(u.as_bytes()))
            .map(|u| u.len())
            .max();
        match longest {
            Some(len) => (len, true),
            None => (s.len().min(one_char_len(s[0])), false),
        }
    }

    /// The normalisation of one prefix of `input`: the replacement and the
    /// number of input bytes it consumes (`Normalizer::NormalizePrefix`).
    fn normalize_prefix<'s>(&'s self, input: &'s [u8]) -> (&'s [u8], usize) {
        let (len, found) = self.prefix_match(input);
        if found {
            return (&input[..len], len);
        }
        if let Some((len, out)) = self
            .normalizer
            .charsmap
            .as_ref()
            .and_then(|m| m.longest_prefix(input))
        {
            return (out, len);
        }
        match valid_char_len(input) {
            Some(len) => (&input[..len], len),
            None => ("\u{fffd}".as_bytes(), 1),
        }
    }

    /// The normalised text the model segments (`Normalizer::Normalize`):
    /// the character map applied, whitespace runs collapsed and trimmed, a
    /// leading `▁` added, spaces escaped as `▁`, as the model's spec says.
    pub fn normalize(&self, text: &str) -> String {
        let spec = &self.normalizer;
        let mut input = text.as_bytes();
        let mut out: Vec<u8> = Vec::with_capacity(input.len() * 3);
        if spec.remove_extra_whitespaces {
            while !input.is_empty() {
                let (piece, consumed) = self.normalize_prefix(input);
                if piece != b" " {
                    break;
                }
                input = &input[consumed..];
            }
        }
        if input.is_empty() {
            return String::new();
        }
        let space: &[u8] = if spec.escape_whitespaces {
            SPACE_SYMBOL.as_bytes()
        } else {
            b" "
        };
        if spec.add_dummy_prefix {
            out.extend_from_slice(space);
        }
        let mut prev_space = spec.remove_extra_whitespaces;
        while !input.is_empty() {
            let (mut piece, consumed) = self.normalize_prefix(input);
            while prev_space && piece.first() == Some(&b' ') {
                piece = &piece[1..];
            }
            if !piece.is_empty() {
                for &b in piece {
                    if b == b' ' {
                        out.extend_from_slice(space);
                    } else {
                        out.push(b);
                    }
                }
                prev_space = piece.ends_with(b" ");
            }
            input = &input[consumed..];
            if !spec.remove_extra_whitespaces {
                prev_space = false;
            }
        }
        if spec.remove_extra_whitespaces {
            while out.ends_with(space) {
                out.truncate(out.len() - space.len());
            }
        }
        match String::from_utf8(out) {
            Ok(s) => s,
            Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
        }
    }

    /// The BPE segmentation of normalised text: (piece, id) in order, before
    /// the unknown pieces are merged or spelled as bytes.
    fn bpe<'t>(&self, normalized: &'t str) -> Vec<(&'t str, u32)> {
        let bytes = normalized.as_bytes();
        let mut symbols: Vec<Symbol> = Vec::new();
        let mut pos = 0;
        while pos < bytes.len() {
            let (len, frozen) = self.prefix_match(&bytes[pos..]);
            let index = symbols.len();
            symbols.push(Symbol {
                start: pos,
                len,
                prev: index.checked_sub(1),
                next: (pos + len < bytes.len()).then_some(index + 1),
                frozen,
            });
            pos += len;
        }
        if symbols.is_empty() {
            return Vec::new();
        }
        let text = |s: &Symbol| normalized.get(s.start..s.start + s.len).unwrap_or("");
        let mut agenda = BinaryHeap::new();
        let mut rev_merge: HashMap<&'t str, (&'t str, &'t str)> = HashMap::new();
        let mut push = |symbols: &[Symbol],
                        agenda: &mut BinaryHeap<Candidate>,
                        left: Option<usize>,
                        right: Option<usize>| {
            let (Some(left), Some(right)) = (left, right) else {
                return;
            };
            let (l, r) = (symbols[left], symbols[right]);
            if l.frozen || r.frozen {
                return;
            }
            let Some(merged) = normalized.get(l.start..l.start + l.len + r.len) else {
                return;
            };
            let Some(&id) = self.mergeable.get(merged) else {
                return;
            };
            let piece = &self.pieces[id as usize];
            agenda.push(Candidate {
                left,
                right,
                score: piece.score,
                size: merged.len(),
            });
            if piece.kind == PieceKind::Unused {
                rev_merge.insert(merged, (text(&l), text(&r)));
            }
        };
        for i in 1..symbols.len() {
            push(&symbols, &mut agenda, Some(i - 1), Some(i));
        }
        while let Some(top) = agenda.pop() {
            let (l, r) = (symbols[top.left], symbols[top.right]);
            if l.len == 0 || r.len == 0 || l.len + r.len != top.size {
                continue;
            }
            symbols[top.left].len += r.len;
            symbols[top.left].next = r.next;
            if let Some(next) = r.next {
                symbols[next].prev = Some(top.left);
            }
            symbols[top.right].len = 0;
            let prev = symbols[top.left].prev;
            push(&symbols, &mut agenda, prev, Some(top.left));
            let next = symbols[top.left].next;
            push(&symbols, &mut agenda, Some(top.left), next);
        }
        let mut out = Vec::new();
        let mut index = Some(0);
        while let Some(i) = index {
            self.resegment(text(&symbols[i]), &rev_merge, &mut out);
            index = symbols[i].next;
        }
        out
    }

    /// Splits an unused piece back into the pieces it was merged from.
    fn resegment<'t>(
        &self,
        piece: &'t str,
        rev_merge: &HashMap<&'t str, (&'t str, &'t str)>,
        out: &mut Vec<(&'t str, u32)>,
    ) {
        let id = self.piece_to_id(piece);
        if self.pieces[id as usize].kind == PieceKind::Unused {
            if let Some(&(left, right)) = rev_merge.get(piece) {
                self.resegment(left, rev_merge, out);
                self.resegment(right, rev_merge, out);
                return;
            }
        }
        out.push((piece, id));
    }

    /// Encodes `text` into (piece, id) pairs, as
    /// `SentencePieceProcessor.Encode` does (no BOS/EOS).
    pub fn encode(&self, text: &str) -> Vec<(String, u32)> {
        let normalized = self.normalize(text);
        let mut out: Vec<(String, u32)> = Vec::new();
        let mut prev_unknown = false;
        for (piece, id) in self.bpe(&normalized) {
            let unknown = id == self.unk_id;
            if unknown && self.byte_fallback {
                for b in piece.bytes() {
                    let name = format!("<0x{b:02X}>");
                    let id = self.piece_to_id(&name);
                    out.push((name, id));
                }
            } else if unknown && prev_unknown {
                if let Some(last) = out.last_mut() {
                    last.0.push_str(piece);
                }
            } else {
                out.push((piece.to_string(), id));
            }
            prev_unknown = unknown;
        }
        out
    }

    /// The pieces of `text` (`Encode(text, out_type=str)`).
    pub fn encode_pieces(&self, text: &str) -> Vec<String> {
        self.encode(text).into_iter().map(|(p, _)| p).collect()
    }

    /// The ids of `text` (`Encode(text, out_type=int)`).
    pub fn encode_ids(&self, text: &str) -> Vec<u32> {
        self.encode(text).into_iter().map(|(_, id)| id).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn varint(mut v: u64, out: &mut Vec<u8>) {
        loop {
            let b = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                out.push(b);
                return;
            }
            out.push(b | 0x80);
        }
    }

    fn bytes_field(number: u64, body: &[u8], out: &mut Vec<u8>) {
        varint(number << 3 | 2, out);
        varint(body.len() as u64, out);
        out.extend_from_slice(body);
    }

    fn piece(text: &str, score: f32, kind: u64) -> Vec<u8> {
        let mut p = Vec::new();
        bytes_field(1, text.as_bytes(), &mut p);
        varint(2 << 3 | 5, &mut p);
        p.extend_from_slice(&score.to_le_bytes());
        varint(3 << 3, &mut p);
        varint(kind, &mut p);
        p
    }

    /// A hand-made BPE model: `<unk>`, `<s>`, `</s>`, `▁`, `a`, `b`, `ab`,
    /// `▁ab` (no character map: identity).
    fn tiny(model_type: u64) -> Vec<u8> {
        let mut m = Vec::new();
        for (text, score, kind) in [
            ("<unk>", 0.0, 2),
            ("<s>", 0.0, 3),
            ("</s>", 0.0, 3),
            ("ab", -1.0, 1),
            ("▁ab", -2.0, 1),
            ("▁", -3.0, 1),
            ("a", -4.0, 1),
            ("b", -5.0, 1),
        ] {
            bytes_field(1, &piece(text, score, kind), &mut m);
        }
        let mut trainer = Vec::new();
        varint(3 << 3, &mut trainer);
        varint(model_type, &mut trainer);
        bytes_field(2, &trainer, &mut m);
        m
    }

    #[test]
    fn encodes_a_hand_made_model() {
        let sp = SentencePiece::from_bytes(&tiny(2), "tiny").unwrap();
        assert_eq!(sp.vocab_size(), 8);
        assert_eq!(sp.encode_pieces("ab  ab ba"), ["▁ab", "▁ab", "▁", "b", "a"]);
        assert_eq!(sp.encode_ids(" abc"), [4, 0]);
        assert_eq!(sp.encode_pieces("abcd"), ["▁ab", "cd"]);
        assert_eq!(sp.piece_to_id("<s>"), 1);
        assert_eq!(sp.piece_to_id("zz"), 0);
        assert_eq!(sp.id_to_piece(3), Some("ab"));
        assert!(sp.encode("   ").is_empty());
    }

    /// Expectations from sentencepiece 0.2.1 on the same hand-made model.
    #[test]
    fn unused_pieces_are_split_back() {
        let mut m = Vec::new();
        for (text, score, kind) in [
            ("<unk>", 0.0, 2),
            ("<s>", 0.0, 3),
            ("</s>", 0.0, 3),
            ("ab", -1.0, 5),
            ("▁ab", -2.0, 1),
            ("▁", -3.0, 1),
            ("a", -4.0, 1),
            ("b", -5.0, 1),
            ("bb", -6.0, 1),
            ("abb", -7.0, 1),
        ] {
            bytes_field(1, &piece(text, score, kind), &mut m);
        }
        let mut trainer = Vec::new();
        varint(3 << 3, &mut trainer);
        varint(2, &mut trainer);
        bytes_field(2, &trainer, &mut m);
        let sp = SentencePiece::from_bytes(&m, "unused").unwrap();
        let cases: [(&str, &[&str], &[u32]); 4] = [
            ("b ab", &["▁", "b", "▁ab"], &[5, 7, 4]),
            ("abb", &["▁ab", "b"], &[4, 7]),
            ("xab", &["▁", "x", "a", "b"], &[5, 0, 6, 7]),
            ("bab", &["▁", "b", "a", "b"], &[5, 7, 6, 7]),
        ];
        for (text, pieces, ids) in cases {
            assert_eq!(sp.encode_pieces(text), pieces, "{text}");
            assert_eq!(sp.encode_ids(text), ids, "{text}");
        }
    }

    #[test]
    fn rejects_other_model_types() {
        let err = SentencePiece::from_bytes(&tiny(1), "uni.model").unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("uni.model") && msg.contains("UNIGRAM"),
            "{msg}"
        );
    }

    #[test]
    fn rejects_truncated_and_foreign_files() {
        let model = tiny(2);
        for cut in [1, 5, model.len() / 2, model.len() - 1] {
            let err = SentencePiece::from_bytes(&model[..cut], "cut.model").unwrap_err();
            assert!(matches!(err, Error::Format { ref path, .. } if path == "cut.model"));
        }
        for junk in [
            &b"PK\x03\x04 not a model at all"[..],
            b"\x89PNG\r\n\x1a\n",
            b"",
            &[0xff; 64],
        ] {
            assert!(matches!(
                SentencePiece::from_bytes(junk, "junk.model"),
                Err(Error::Format { .. })
            ));
        }
    }

    #[test]
    fn rejects_a_corrupt_charsmap() {
        let mut m = tiny(2);
        let mut norm = Vec::new();
        bytes_field(2, &[0xff, 0xff, 0, 0, 1, 2], &mut norm);
        bytes_field(3, &norm, &mut m);
        let err = SentencePiece::from_bytes(&m, "map.model").unwrap_err();
        assert!(err.to_string().contains("precompiled_charsmap"), "{err}");
    }

    #[test]
    fn missing_file_is_an_io_error() {
        assert!(matches!(
            SentencePiece::open("/nonexistent/bpe.model"),
            Err(Error::Io { .. })
        ));
    }
}
