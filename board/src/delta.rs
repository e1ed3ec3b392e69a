//! Delta files: a new file written as pieces of a base file the appliance already has (its
//! running slot) and the bytes that changed, for update bundles that cross slow links.
//!
//! The encoder cuts both files into content-defined chunks (a gear rolling hash, so an insertion
//! moves the cut points with the data instead of changing every block after it) and looks up each
//! new chunk's sha256 among the base's chunks. The format is a magic and a list of operations:
//!
//! ```text
//! "FBDELTA1"
//! 0x01 offset:u64le len:u32le    copy len bytes of the base from offset
//! 0x02 len:u32le bytes[len]      these bytes
//! 0x00                           end
//! ```
//!
//! The decoder streams: memory is one piece at a time whatever the file sizes, every offset and
//! length is checked against the base's and the result's sizes, and the caller checks the
//! result's sha256 against the signed manifest (a delta cannot write more than the manifest
//! says, nor anything it does not sign).

use std::collections::HashMap;
use std::io::{self, Read, Write};

use sha2::{Digest, Sha256};

const MAGIC: &[u8; 8] = b"FBDELTA1";
const END: u8 = 0;
const COPY: u8 = 1;
const DATA: u8 = 2;
/// The longest copy an encoder writes and a decoder accepts.
pub const MAX_COPY: u32 = 64 << 20;
/// The longest run of bytes in one operation.
pub const MAX_DATA: u32 = 1 << 20;
/// Chunks are cut between these sizes, about every `1 << AVG_BITS` bytes.
const MIN_CHUNK: usize = 2 << 10;
const MAX_CHUNK: usize = 64 << 10;
const AVG_BITS: u32 = 13;

/// Why a delta could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum DeltaError {
    #[error("reading the delta: {0}")]
    Read(io::Error),
    #[error("reading the base: {0}")]
    Base(io::Error),
    #[error("writing the result: {0}")]
    Write(io::Error),
    #[error("not a delta file (no FBDELTA1 magic)")]
    Magic,
    #[error("unknown delta operation {0:#04x}")]
    Operation(u8),
    #[error("a delta operation of {0} bytes is longer than allowed")]
    TooLong(u32),
    #[error("the delta copies {len} bytes at {offset}, beyond the base's {base} bytes")]
    BeyondBase { offset: u64, len: u32, base: u64 },
    #[error("the delta makes more than the {0} bytes the manifest says")]
    TooMuch(u64),
    #[error("the delta makes {made} bytes, the manifest says {expected}")]
    Short { made: u64, expected: u64 },
    #[error("the delta has bytes after its end")]
    Trailing,
}

/// The base a delta refers to: read at absolute offsets.
pub trait Base {
    /// Fills `buf` from the base's `offset`.
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()>;
}

impl Base for [u8] {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let start = usize::try_from(offset).map_err(|_| io::ErrorKind::UnexpectedEof)?;
        let piece = start
            .checked_add(buf.len())
            .and_then(|end| self.get(start..end))
            .ok_or(io::ErrorKind::UnexpectedEof)?;
        buf.copy_from_slice(piece);
        Ok(())
    }
}

/// A region of a file (a partition of a disk image, or a whole device) as a base.
#[derive(Debug)]
pub struct FileBase<'a> {
    pub file: &'a std::fs::File,
    /// Where the base starts in the file.
    pub start: u64,
}

impl Base for FileBase<'_> {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        use std::os::unix::fs::FileExt;
        let at = self
            .start
            .checked_add(offset)
            .ok_or(io::ErrorKind::InvalidInput)?;
        self.file.read_exact_at(buf, at)
    }
}

/// What an encoding came to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Bytes taken from the base.
    pub copied: u64,
    /// Bytes carried in the delta.
    pub carried: u64,
    /// The delta's size.
    pub size: u64,
}

/// 256 fixed pseudo-random words for the gear hash (splitmix64 from a fixed seed: encoder and
/// any later encoder cut at the same places). `i` stays below 256 (a const block cannot `get_mut`).
#[allow(clippy::indexing_slicing)]
const GEAR: [u64; 256] = {
    let mut table = [0u64; 256];
    let mut state: u64 = 0x666c_616b_6562_6f6f;
    let mut i = 0;
    while i < 256 {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        table[i] = z ^ (z >> 31);
        i += 1;
    }
    table
};

/// The length of the chunk at the start of `data`.
fn cut(data: &[u8]) -> usize {
    if data.len() <= MIN_CHUNK {
        return data.len();
    }
    // The gear hash's high bits depend on the last 64 bytes, its low bits on the last few only.
    let mask = ((1u64 << AVG_BITS) - 1) << (64 - AVG_BITS);
    let mut hash = 0u64;
    for (i, &byte) in data.iter().enumerate().take(MAX_CHUNK).skip(MIN_CHUNK) {
        // A u8 always indexes the table: the bounds check is compiled away.
        let gear = GEAR.get(usize::from(byte)).copied().unwrap_or_default();
        hash = (hash << 1).wrapping_add(gear);
        if hash & mask == 0 {
            return i + 1;
        }
    }
    data.len().min(MAX_CHUNK)
}

/// `data` cut into content-defined chunks: (offset, length).
fn chunks(data: &[u8]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut at = 0;
    while let Some(rest) = data.get(at..).filter(|r| !r.is_empty()) {
        let len = cut(rest);
        out.push((at, len));
        at += len;
    }
    out
}

/// One operation before it is written; neighbours are merged.
enum Op {
    Copy { offset: u64, len: u32 },
    Data { start: usize, len: u32 },
}

/// Writes the delta that makes `new` from `base`.
pub fn encode(base: &[u8], new: &[u8], out: &mut impl Write) -> io::Result<Stats> {
    let mut index: HashMap<[u8; 32], u64> = HashMap::new();
    for (offset, len) in chunks(base) {
        let piece = base.get(offset..offset + len).unwrap_or_default();
        index
            .entry(Sha256::digest(piece).into())
            .or_insert(offset as u64);
    }
    let mut ops: Vec<Op> = Vec::new();
    for (start, len) in chunks(new) {
        let piece = new.get(start..start + len).unwrap_or_default();
        let len32 = u32::try_from(len).map_err(|_| io::ErrorKind::InvalidInput)?;
        let digest: [u8; 32] = Sha256::digest(piece).into();
        match (index.get(&digest), ops.last_mut()) {
            (Some(&offset), Some(Op::Copy { offset: o, len: l }))
                if *o + u64::from(*l) == offset && *l + len32 <= MAX_COPY =>
            {
                *l += len32;
            }
            (Some(&offset), _) => ops.push(Op::Copy { offset, len: len32 }),
            (None, Some(Op::Data { start: s, len: l }))
                if *s + *l as usize == start && *l + len32 <= MAX_DATA =>
            {
                *l += len32;
            }
            (None, _) => ops.push(Op::Data { start, len: len32 }),
        }
    }
    let mut stats = Stats {
        size: MAGIC.len() as u64 + 1,
        ..Stats::default()
    };
    out.write_all(MAGIC)?;
    for op in ops {
        match op {
            Op::Copy { offset, len } => {
                out.write_all(&[COPY])?;
                out.write_all(&offset.to_le_bytes())?;
                out.write_all(&len.to_le_bytes())?;
                stats.copied += u64::from(len);
                stats.size += 13;
            }
            Op::Data { start, len } => {
                let bytes = new
                    .get(start..start + len as usize)
                    .ok_or(io::ErrorKind::InvalidInput)?;
                out.write_all(&[DATA])?;
                out.write_all(&len.to_le_bytes())?;
                out.write_all(bytes)?;
                stats.carried += u64::from(len);
                stats.size += 5 + u64::from(len);
            }
        }
    }
    out.write_all(&[END])?;
    Ok(stats)
}

fn read_array<const N: usize>(delta: &mut impl Read) -> Result<[u8; N], DeltaError> {
    let mut bytes = [0u8; N];
    delta.read_exact(&mut bytes).map_err(DeltaError::Read)?;
    Ok(bytes)
}

/// Makes the file `delta` describes from `base` (of `base_len` bytes) into `out`, which gets
/// exactly `expected` bytes or an error. Returns the result's sha256 in hex.
pub fn decode(
    delta: &mut impl Read,
    base: &(impl Base + ?Sized),
    base_len: u64,
    out: &mut impl Write,
    expected: u64,
) -> Result<String, DeltaError> {
    if &read_array::<8>(delta)? != MAGIC {
        return Err(DeltaError::Magic);
    }
    let mut hasher = Sha256::new();
    let mut made = 0u64;
    let mut buf = vec![0u8; MAX_DATA as usize];
    loop {
        let [op] = read_array::<1>(delta)?;
        let (len, offset) = match op {
            END => break,
            COPY => {
                let offset = u64::from_le_bytes(read_array(delta)?);
                let len = u32::from_le_bytes(read_array(delta)?);
                if len > MAX_COPY {
                    return Err(DeltaError::TooLong(len));
                }
                if offset
                    .checked_add(u64::from(len))
                    .is_none_or(|end| end > base_len)
                {
                    return Err(DeltaError::BeyondBase {
                        offset,
                        len,
                        base: base_len,
                    });
                }
                (len, Some(offset))
            }
            DATA => {
                let len = u32::from_le_bytes(read_array(delta)?);
                if len > MAX_DATA {
                    return Err(DeltaError::TooLong(len));
                }
                (len, None)
            }
            other => return Err(DeltaError::Operation(other)),
        };
        made = made
            .checked_add(u64::from(len))
            .filter(|&m| m <= expected)
            .ok_or(DeltaError::TooMuch(expected))?;
        let mut done = 0u32;
        while done < len {
            let n = (len - done).min(MAX_DATA);
            let piece = buf.get_mut(..n as usize).unwrap_or_default();
            match offset {
                Some(offset) => base
                    .read_at(piece, offset + u64::from(done))
                    .map_err(DeltaError::Base)?,
                None => delta.read_exact(piece).map_err(DeltaError::Read)?,
            }
            hasher.update(&*piece);
            out.write_all(piece).map_err(DeltaError::Write)?;
            done += n;
        }
    }
    if made != expected {
        return Err(DeltaError::Short { made, expected });
    }
    let mut rest = [0u8; 1];
    if delta.read(&mut rest).map_err(DeltaError::Read)? != 0 {
        return Err(DeltaError::Trailing);
    }
    Ok(crate::hex(&hasher.finalize()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    /// Deterministic bytes that do not repeat (xorshift).
    fn noise(len: usize, seed: u64) -> Vec<u8> {
        let mut s = seed | 1;
        (0..len)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                s as u8
            })
            .collect()
    }

    fn sha(data: &[u8]) -> String {
        Sha256::digest(data)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    fn roundtrip(base: &[u8], new: &[u8]) -> Stats {
        let mut delta = Vec::new();
        let stats = encode(base, new, &mut delta).unwrap();
        assert_eq!(stats.size, delta.len() as u64);
        assert_eq!(stats.copied + stats.carried, new.len() as u64);
        let mut out = Vec::new();
        let sum = decode(
            &mut delta.as_slice(),
            base,
            base.len() as u64,
            &mut out,
            new.len() as u64,
        )
        .unwrap();
        assert!(out == new);
        assert_eq!(sum, sha(new));
        stats
    }

    #[test]
    fn an_insertion_costs_about_the_inserted_bytes_not_the_rest_of_the_file() {
        let base = noise(4 << 20, 7);
        let mut new = base.clone();
        new.splice(1_000_000..1_000_000, noise(5_000, 9));
        new.truncate(3 << 20);
        new.extend_from_slice(&noise(100_000, 11));
        let stats = roundtrip(&base, &new);
        // The inserted and appended bytes, plus at most a couple of chunks around each change.
        assert!(stats.carried < 105_000 + 4 * MAX_CHUNK as u64, "{stats:?}");
        assert!(stats.size < stats.carried + 1_000, "{stats:?}");
    }

    #[test]
    fn unrelated_files_and_empty_ones_still_round_trip() {
        let a = noise(300_000, 1);
        let b = noise(200_000, 2);
        let stats = roundtrip(&a, &b);
        assert_eq!(stats.copied, 0);
        roundtrip(&[], &b);
        roundtrip(&a, &[]);
        roundtrip(&[], &[]);
        // Long runs merge: one copy of a whole identical file.
        let same = roundtrip(&a, &a);
        assert_eq!((same.copied, same.size), (a.len() as u64, 8 + 13 + 1));
    }

    #[test]
    fn bad_deltas_are_errors_not_panics_and_never_write_past_the_size() {
        let base = noise(100_000, 3);
        let new = noise(50_000, 4);
        let mut good = Vec::new();
        encode(&base, &new, &mut good).unwrap();
        let run = |delta: &[u8], expected: u64| {
            let mut out = Vec::new();
            let r = decode(
                &mut &delta[..],
                base.as_slice(),
                100_000,
                &mut out,
                expected,
            );
            assert!(out.len() as u64 <= expected);
            r
        };
        assert!(matches!(run(b"NOTDELTA\0", 0), Err(DeltaError::Magic)));
        assert!(matches!(
            run(b"FBDELTA1\x07", 0),
            Err(DeltaError::Operation(7))
        ));
        let mut beyond = b"FBDELTA1\x01".to_vec();
        beyond.extend_from_slice(&99_990u64.to_le_bytes());
        beyond.extend_from_slice(&20u32.to_le_bytes());
        assert!(matches!(
            run(&beyond, 1_000),
            Err(DeltaError::BeyondBase { .. })
        ));
        let mut huge = b"FBDELTA1\x02".to_vec();
        huge.extend_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(run(&huge, u64::MAX), Err(DeltaError::TooLong(_))));
        assert!(matches!(run(&good, 49_999), Err(DeltaError::TooMuch(_))));
        assert!(matches!(run(&good, 50_001), Err(DeltaError::Short { .. })));
        let mut trailing = good.clone();
        trailing.push(0);
        assert!(matches!(run(&trailing, 50_000), Err(DeltaError::Trailing)));
        // Every prefix and every single-byte change: an error or the wrong bytes, never a panic.
        for cut in 0..good.len().min(64) {
            assert!(run(&good[..cut], 50_000).is_err());
        }
        for at in (0..good.len()).step_by(997) {
            let mut bad = good.clone();
            bad[at] ^= 0x55;
            let _ = run(&bad, 50_000);
        }
    }

    #[test]
    fn chunks_cover_the_data_within_their_bounds() {
        let data = noise(1 << 20, 5);
        let cuts = chunks(&data);
        assert_eq!(cuts.iter().map(|c| c.1).sum::<usize>(), data.len());
        let (last, body) = cuts.split_last().unwrap();
        assert!(body.iter().all(|c| (MIN_CHUNK..=MAX_CHUNK).contains(&c.1)));
        assert!(last.1 <= MAX_CHUNK);
        // About 8 KiB apart on average.
        let avg = data.len() / cuts.len();
        assert!((4 << 10..16 << 10).contains(&avg), "{avg}");
    }
}
