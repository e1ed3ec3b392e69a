//! The lease journal's file, `flakeboot.redb.lease-journal` beside the database: a fixed-size,
//! zero-filled file (so `fdatasync` after an append writes one or two pages and no metadata)
//! in two halves. Records are appended to one half; when it is full the other half, whose
//! records the database has by then flushed, is emptied and written next. So the journal never
//! waits for the database to catch up, unless the database is a whole half behind.
//!
//! Each half: a header, then records one after another. Header (at the half's start):
//! `FBLJRNL1`, format `u32`, the journal's id `u64` (the database names the journal it belongs
//! to), the sequence number of the half's first record `u64`, and the first 8 bytes of the
//! SHA-256 of those 28 bytes. Record: `FBLR`, its sequence number `u64`, the payload's length
//! `u32`, the first 8 bytes of the SHA-256 of sequence number, length and payload, then the
//! payload. Little-endian.
//!
//! Reading a half stops at the first record that is not the next one (a torn write, or what is
//! left of an earlier round: its sequence numbers are lower than the header's).

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// The journal's file name in the state directory. It starts with the database's name, so
/// backups leave it out with the database's other files (the backup's copy of the database is
/// taken after everything in the journal is in it).
pub const JOURNAL_FILE: &str = "flakeboot.redb.lease-journal";

/// The file's size: each half holds about 8,000 single-lease records (8 s at 1,000 a second).
pub(crate) const SIZE: u64 = 4 * 1024 * 1024;
const HALF: u64 = SIZE / 2;
/// Where a half's records start, from the half's start.
const HEADER: u64 = 4096;
const HEADER_MAGIC: &[u8; 8] = b"FBLJRNL1";
const FORMAT: u32 = 1;
const RECORD_MAGIC: &[u8; 4] = b"FBLR";
/// Magic, sequence number, length, checksum.
const RECORD_HEAD: usize = 4 + 8 + 4 + 8;

/// The most payload one record can carry.
pub(crate) const MAX_PAYLOAD: usize = (HALF - HEADER) as usize - RECORD_HEAD;

/// One record read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Record {
    pub seq: u64,
    pub payload: Vec<u8>,
}

/// An open journal, positioned after its last record.
#[derive(Debug)]
pub(crate) struct Journal {
    file: File,
    pub id: u64,
    /// The sequence number the next record gets.
    pub next_seq: u64,
    /// The half appended to.
    active: Half,
    /// The half written before it (emptied when the active one is full).
    other: Half,
}

/// One half of the file.
#[derive(Debug, Clone, Copy)]
struct Half {
    start: u64,
    /// Where its next record goes (from the file's start).
    tail: u64,
    /// Its last record's sequence number, if it has records.
    last: Option<u64>,
    first_seq: u64,
}

impl Half {
    fn empty(start: u64, first_seq: u64) -> Half {
        Half {
            start,
            tail: start + HEADER,
            last: None,
            first_seq,
        }
    }
}

fn checksum(parts: &[&[u8]]) -> [u8; 8] {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p);
    }
    h.finalize()
        .as_slice()
        .first_chunk::<8>()
        .copied()
        .unwrap_or_default()
}

fn header_bytes(id: u64, first_seq: u64) -> Vec<u8> {
    let mut b = Vec::with_capacity(36);
    b.extend_from_slice(HEADER_MAGIC);
    b.extend_from_slice(&FORMAT.to_le_bytes());
    b.extend_from_slice(&id.to_le_bytes());
    b.extend_from_slice(&first_seq.to_le_bytes());
    let sum = checksum(&[&b]);
    b.extend_from_slice(&sum);
    b
}

/// Fixed-size fields read off the front of a byte string.
struct Fields<'a>(&'a [u8]);

impl Fields<'_> {
    fn take<const N: usize>(&mut self) -> [u8; N] {
        match self.0.split_first_chunk::<N>() {
            Some((field, rest)) => {
                self.0 = rest;
                *field
            }
            // Callers read fixed-size buffers of exactly their fields' length.
            None => [0; N],
        }
    }
}

/// The header's id and first sequence number, if it is one this build wrote.
fn parse_header(head: &[u8; 36]) -> Option<(u64, u64)> {
    let mut f = Fields(head);
    let magic: [u8; 8] = f.take();
    let format = u32::from_le_bytes(f.take());
    let id: [u8; 8] = f.take();
    let first: [u8; 8] = f.take();
    let sum: [u8; 8] = f.take();
    let ok = &magic == HEADER_MAGIC
        && format == FORMAT
        && sum == checksum(&[&magic, &format.to_le_bytes(), &id, &first]);
    ok.then(|| (u64::from_le_bytes(id), u64::from_le_bytes(first)))
}

/// A record's head: sequence number, payload length and checksum, if its magic is right.
fn parse_record_head(rh: &[u8; RECORD_HEAD]) -> Option<(u64, usize, [u8; 8])> {
    let mut f = Fields(rh);
    let magic: [u8; 4] = f.take();
    let seq = u64::from_le_bytes(f.take());
    let len = u32::from_le_bytes(f.take()) as usize;
    let sum: [u8; 8] = f.take();
    (&magic == RECORD_MAGIC).then_some((seq, len, sum))
}

fn record_sum(seq: u64, len: u32, payload: &[u8]) -> [u8; 8] {
    checksum(&[&seq.to_le_bytes(), &len.to_le_bytes(), payload])
}

impl Journal {
    /// Opens the journal at `path` and reads its records, in order. `None` if there is none, or
    /// neither header is one this build wrote (then the caller makes a new one).
    pub fn open(path: &Path) -> io::Result<Option<(Journal, Vec<Record>)>> {
        let file = match OpenOptions::new().read(true).write(true).open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        if file.metadata()?.len() != SIZE {
            return Ok(None);
        }
        let mut found = Vec::new();
        for start in [0, HALF] {
            let mut head = [0u8; 36];
            file.read_exact_at(&mut head, start)?;
            if let Some((id, first_seq)) = parse_header(&head) {
                found.push((start, id, first_seq));
            }
        }
        // The newer half (the one emptied last) says whose journal this is; a half of another
        // id is no part of it.
        let Some(&(_, id, _)) = found.iter().max_by_key(|(_, _, first)| *first) else {
            return Ok(None);
        };
        let (mut first, mut second) = (Half::empty(0, 0), Half::empty(HALF, 0));
        let mut records = Vec::new();
        for (start, half_id, first_seq) in found {
            if half_id != id {
                continue;
            }
            let (half, mut read) = read_half(&file, start, first_seq)?;
            if start == 0 {
                first = half;
            } else {
                second = half;
            }
            records.append(&mut read);
        }
        records.sort_by_key(|r| r.seq);
        let next_seq = [first, second]
            .iter()
            .map(|h| h.last.map_or(h.first_seq, |l| l + 1))
            .max()
            .unwrap_or(1);
        let (active, other) = if second.first_seq > first.first_seq {
            (second, first)
        } else {
            (first, second)
        };
        let journal = Journal {
            file,
            id,
            next_seq,
            active,
            other,
        };
        Ok(Some((journal, records)))
    }

    /// Makes a new, empty journal at `path` (replacing any file there): written whole through
    /// a scratch file, synced, renamed into place, the directory synced.
    pub fn create(path: &Path, id: u64, first_seq: u64) -> io::Result<Journal> {
        let scratch = scratch_path(path);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&scratch)?;
        let zeros = vec![0u8; 1024 * 1024];
        let mut at = 0;
        while at < SIZE {
            file.write_all_at(&zeros, at)?;
            at += zeros.len() as u64;
        }
        for start in [0, HALF] {
            file.write_all_at(&header_bytes(id, first_seq), start)?;
        }
        file.sync_all()?;
        std::fs::rename(&scratch, path)?;
        if let Some(dir) = path.parent() {
            File::open(dir)?.sync_all()?;
        }
        Ok(Journal {
            file,
            id,
            next_seq: first_seq,
            active: Half::empty(0, first_seq),
            other: Half::empty(HALF, first_seq),
        })
    }

    /// Whether a record of `len` payload bytes fits after the last one of the active half.
    pub fn fits(&self, len: usize) -> bool {
        self.active.tail + (RECORD_HEAD + len) as u64 <= self.active.start + HALF
    }

    /// The last record of the other half: the database must have flushed it before
    /// [`Journal::switch`] empties that half.
    pub fn other_last(&self) -> Option<u64> {
        self.other.last
    }

    /// Empties the other half and appends to it from now on.
    pub fn switch(&mut self) -> io::Result<()> {
        self.other = self.empty_half(self.other.start)?;
        self.file.sync_data()?;
        std::mem::swap(&mut self.active, &mut self.other);
        Ok(())
    }

    /// Appends one record to the active half and waits until it is on disk: its sequence
    /// number. The caller makes room first ([`Journal::fits`], [`Journal::switch`]).
    pub fn append(&mut self, payload: &[u8]) -> io::Result<u64> {
        let len = u32::try_from(payload.len())
            .ok()
            .filter(|_| self.fits(payload.len()))
            .ok_or_else(|| io::Error::other("the lease journal is full"))?;
        let seq = self.next_seq;
        let mut rec = Vec::with_capacity(RECORD_HEAD + payload.len());
        rec.extend_from_slice(RECORD_MAGIC);
        rec.extend_from_slice(&seq.to_le_bytes());
        rec.extend_from_slice(&len.to_le_bytes());
        rec.extend_from_slice(&record_sum(seq, len, payload));
        rec.extend_from_slice(payload);
        self.file.write_all_at(&rec, self.active.tail)?;
        self.file.sync_data()?;
        self.active.tail += rec.len() as u64;
        self.active.last = Some(seq);
        self.next_seq += 1;
        Ok(seq)
    }

    /// Empties the journal (everything in it is flushed in the database): the next record is
    /// `next_seq`, written from the start of the first half again.
    pub fn reset(&mut self) -> io::Result<()> {
        self.other = self.empty_half(HALF)?;
        self.active = self.empty_half(0)?;
        self.file.sync_data()
    }

    /// Writes the header of an empty half at `start` (not synced).
    fn empty_half(&self, start: u64) -> io::Result<Half> {
        self.file
            .write_all_at(&header_bytes(self.id, self.next_seq), start)?;
        Ok(Half::empty(start, self.next_seq))
    }

    /// Whether records are in it.
    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.active.last.is_none() && self.other.last.is_none()
    }
}

/// The records of the half at `start` whose header names `first_seq`.
fn read_half(file: &File, start: u64, first_seq: u64) -> io::Result<(Half, Vec<Record>)> {
    let mut half = Half::empty(start, first_seq);
    let mut records = Vec::new();
    let end = start + HALF;
    while half.tail + RECORD_HEAD as u64 <= end {
        let mut rh = [0u8; RECORD_HEAD];
        file.read_exact_at(&mut rh, half.tail)?;
        let Some((seq, len, sum)) = parse_record_head(&rh) else {
            break;
        };
        let expected = half.last.map_or(first_seq, |l| l + 1);
        if seq != expected || len > MAX_PAYLOAD || half.tail + (RECORD_HEAD + len) as u64 > end {
            break;
        }
        let mut payload = vec![0u8; len];
        file.read_exact_at(&mut payload, half.tail + RECORD_HEAD as u64)?;
        // `len` is at most MAX_PAYLOAD, well inside u32.
        if sum != record_sum(seq, len as u32, &payload) {
            break;
        }
        records.push(Record { seq, payload });
        half.tail += (RECORD_HEAD + len) as u64;
        half.last = Some(seq);
    }
    Ok((half, records))
}

fn scratch_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_owned();
    name.push(".new");
    path.with_file_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_come_back_in_order_after_a_reopen_and_a_reset_forgets_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(JOURNAL_FILE);
        let mut j = Journal::create(&path, 7, 100).unwrap();
        assert!(j.is_empty());
        assert_eq!(j.append(b"one").unwrap(), 100);
        assert_eq!(j.append(b"").unwrap(), 101);
        assert_eq!(j.append(&[9u8; 5000]).unwrap(), 102);
        drop(j);
        let (mut j, records) = Journal::open(&path).unwrap().unwrap();
        assert_eq!(j.id, 7);
        let seqs: Vec<u64> = records.iter().map(|r| r.seq).collect();
        assert_eq!(seqs, [100, 101, 102]);
        assert_eq!(records[0].payload, b"one");
        assert_eq!(records[2].payload, vec![9u8; 5000]);
        assert_eq!(j.append(b"four").unwrap(), 103);
        j.reset().unwrap();
        assert!(j.is_empty());
        assert_eq!(j.append(b"five").unwrap(), 104);
        drop(j);
        // The old round's records after the new one are stale (lower numbers): not read.
        let (j, records) = Journal::open(&path).unwrap().unwrap();
        assert_eq!(records.len(), 1);
        assert_eq!(
            (records[0].seq, &records[0].payload[..]),
            (104, &b"five"[..])
        );
        assert_eq!(j.next_seq, 105);
        let mode = std::fs::metadata(&path).unwrap().permissions();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(mode.mode() & 0o777, 0o600);
    }

    #[test]
    fn a_torn_or_changed_record_ends_the_half_there() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(JOURNAL_FILE);
        let mut j = Journal::create(&path, 1, 1).unwrap();
        j.append(b"kept").unwrap();
        j.append(b"torn record").unwrap();
        j.append(b"after it").unwrap();
        drop(j);
        // Change one payload byte of the second record.
        let f = OpenOptions::new().write(true).open(&path).unwrap();
        let second = HEADER + (RECORD_HEAD + 4) as u64 + RECORD_HEAD as u64;
        f.write_all_at(b"X", second + 3).unwrap();
        drop(f);
        let (mut j, records) = Journal::open(&path).unwrap().unwrap();
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].payload, b"kept");
        // Appending goes on over the torn record.
        assert_eq!(j.append(b"new").unwrap(), 2);
        drop(j);
        let (_, records) = Journal::open(&path).unwrap().unwrap();
        assert_eq!(records.len(), 2);
        assert_eq!(records[1].payload, b"new");
    }

    #[test]
    fn no_file_a_foreign_file_or_two_bad_headers_is_no_journal() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(JOURNAL_FILE);
        assert!(Journal::open(&path).unwrap().is_none());
        std::fs::write(&path, b"something else").unwrap();
        assert!(Journal::open(&path).unwrap().is_none());
        drop(Journal::create(&path, 3, 1).unwrap());
        let f = OpenOptions::new().write(true).open(&path).unwrap();
        f.write_all_at(&[0xff], 14).unwrap();
        drop(f);
        // One good header is enough.
        assert_eq!(Journal::open(&path).unwrap().unwrap().0.id, 3);
        let f = OpenOptions::new().write(true).open(&path).unwrap();
        f.write_all_at(&[0xff], HALF + 14).unwrap();
        drop(f);
        assert!(Journal::open(&path).unwrap().is_none());
    }

    #[test]
    fn a_full_half_refuses_until_the_other_half_takes_over() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(JOURNAL_FILE);
        let mut j = Journal::create(&path, 1, 1).unwrap();
        assert!(j.fits(MAX_PAYLOAD));
        assert!(!j.fits(MAX_PAYLOAD + 1));
        // Three records fill the half (with their heads), give or take two bytes.
        let third = vec![1u8; (MAX_PAYLOAD - 2 * RECORD_HEAD) / 3];
        for _ in 0..3 {
            j.append(&third).unwrap();
        }
        assert!(!j.fits(third.len()));
        let err = j.append(&third).unwrap_err();
        assert!(err.to_string().contains("full"), "{err}");
        assert_eq!(j.other_last(), None);
        j.switch().unwrap();
        assert_eq!(j.other_last(), Some(3));
        assert_eq!(j.append(b"four").unwrap(), 4);
        drop(j);
        // Both halves read back, in order.
        let (mut j, records) = Journal::open(&path).unwrap().unwrap();
        let seqs: Vec<u64> = records.iter().map(|r| r.seq).collect();
        assert_eq!(seqs, [1, 2, 3, 4]);
        assert_eq!(j.append(b"five").unwrap(), 5);
        // The first half emptied: only the second's records and what follows.
        j.switch().unwrap();
        assert_eq!(j.other_last(), Some(5));
        assert_eq!(j.append(b"six").unwrap(), 6);
        drop(j);
        let (j, records) = Journal::open(&path).unwrap().unwrap();
        let seqs: Vec<u64> = records.iter().map(|r| r.seq).collect();
        assert_eq!(seqs, [4, 5, 6]);
        assert_eq!(j.next_seq, 7);
        assert_eq!(j.other_last(), Some(5));
    }
}
