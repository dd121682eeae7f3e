//! The durable spool: bounded, append-only segment files that hold encoded
//! messages while the endpoint is down or the memory queue is full, replayed
//! in order when the endpoint is back, also by the next process.
//!
//! A segment is `seg-<20-digit sequence>.spool`, a run of records
//! `b"GSP1" | len: u32 LE | crc32(payload): u32 LE | payload`. Delivery
//! progress in the oldest segment is kept in `seg-<seq>.pos` (the byte offset
//! of the first record not yet delivered), rewritten after every delivered
//! batch, so a restart re-sends at most the batch in flight. Segments are
//! deleted once delivered. Nothing is fsynced: the spool survives the
//! process dying; after a power loss a damaged tail is detected by the
//! checksum, skipped and counted.

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// What to drop when the spool is full.
///
/// ```
/// use gelf_tracing::{GelfLayer, SpoolFullPolicy};
/// let b = GelfLayer::builder().spool_full_policy(SpoolFullPolicy::DropOldest);
/// # drop(b);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SpoolFullPolicy {
    /// Refuse new messages (counted): the spool keeps the start of the outage.
    #[default]
    DropNewest,
    /// Delete the oldest segment not being replayed (its messages counted):
    /// the spool keeps the latest messages.
    DropOldest,
}

const MAGIC: &[u8; 4] = b"GSP1";
const HEADER: u64 = 12;

struct Segment {
    seq: u64,
    /// File size in bytes.
    bytes: u64,
    /// Records not yet delivered.
    records: u64,
}

/// The spool's state; the layer keeps it behind a mutex.
pub(crate) struct Spool {
    dir: PathBuf,
    max_bytes: u64,
    segment_max: u64,
    policy: SpoolFullPolicy,
    /// Oldest first. The last one is being written when `writer` is set.
    segments: VecDeque<Segment>,
    writer: Option<BufWriter<File>>,
    /// Reading the front segment.
    reader: Option<BufReader<File>>,
    /// Offset of the first undelivered record in the front segment.
    read_pos: u64,
    /// End offsets of the records handed out by the last `peek`.
    peeked: Vec<u64>,
    next_seq: u64,
    /// Bytes in all segment files.
    pub(crate) bytes: u64,
    /// Records not yet delivered.
    pub(crate) records: u64,
}

/// What changed in a spool operation, for the counters.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Loss {
    /// Records deleted because the spool was full.
    pub(crate) full: u64,
    /// Damaged records skipped.
    pub(crate) corrupt: u64,
}

/// Records found in the spool directory when it was opened.
pub(crate) struct Recovered {
    pub(crate) records: u64,
    pub(crate) corrupt_tail: u64,
}

impl Spool {
    /// Opens (creating) the directory and takes stock of segments left by an
    /// earlier process. A damaged tail of a segment is cut off and counted.
    pub(crate) fn open(
        dir: &Path,
        max_bytes: u64,
        policy: SpoolFullPolicy,
    ) -> io::Result<(Self, Recovered)> {
        fs::create_dir_all(dir)?;
        let mut seqs = Vec::new();
        for entry in fs::read_dir(dir)? {
            let name = entry?.file_name();
            let name = name.to_string_lossy();
            if let Some(seq) = name
                .strip_prefix("seg-")
                .and_then(|s| s.strip_suffix(".spool"))
                .and_then(|s| s.parse::<u64>().ok())
            {
                seqs.push(seq);
            }
        }
        seqs.sort_unstable();
        let mut spool = Self {
            dir: dir.to_owned(),
            max_bytes,
            segment_max: (max_bytes / 8).clamp(64 * 1024, 64 * 1024 * 1024),
            policy,
            segments: VecDeque::new(),
            writer: None,
            reader: None,
            read_pos: 0,
            peeked: Vec::new(),
            next_seq: seqs.last().map_or(0, |s| s + 1),
            bytes: 0,
            records: 0,
        };
        let mut rec = Recovered {
            records: 0,
            corrupt_tail: 0,
        };
        for (i, seq) in seqs.into_iter().enumerate() {
            let start = if i == 0 { spool.read_pos_file(seq) } else { 0 };
            let (records, good_end, damaged) = scan(&spool.seg_path(seq), start)?;
            if damaged {
                // Cut the damaged tail so later reads end cleanly.
                OpenOptions::new()
                    .write(true)
                    .open(spool.seg_path(seq))?
                    .set_len(good_end)?;
                rec.corrupt_tail += 1;
            }
            if records == 0 {
                spool.remove_files(seq);
                continue;
            }
            if spool.segments.is_empty() {
                spool.read_pos = start;
            }
            spool.segments.push_back(Segment {
                seq,
                bytes: good_end,
                records,
            });
            spool.bytes += good_end;
            spool.records += records;
            rec.records += records;
        }
        Ok((spool, rec))
    }

    fn seg_path(&self, seq: u64) -> PathBuf {
        self.dir.join(format!("seg-{seq:020}.spool"))
    }

    fn pos_path(&self, seq: u64) -> PathBuf {
        self.dir.join(format!("seg-{seq:020}.pos"))
    }

    fn read_pos_file(&self, seq: u64) -> u64 {
        fs::read_to_string(self.pos_path(seq))
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0)
    }

    fn remove_files(&self, seq: u64) {
        let _ = fs::remove_file(self.seg_path(seq));
        let _ = fs::remove_file(self.pos_path(seq));
    }

    /// Appends one message. Returns the loss caused by the full policy;
    /// `Ok(false)` when the message itself was refused (spool full, drop newest).
    pub(crate) fn append(&mut self, payload: &[u8], loss: &mut Loss) -> io::Result<bool> {
        let need = HEADER + payload.len() as u64;
        if need > self.max_bytes {
            return Ok(false);
        }
        while self.bytes + need > self.max_bytes {
            if self.policy == SpoolFullPolicy::DropNewest || !self.evict_oldest(loss) {
                return Ok(false);
            }
        }
        let rotate = match (self.writer.as_ref(), self.segments.back()) {
            (Some(_), Some(seg)) => seg.bytes + need > self.segment_max,
            _ => true,
        };
        if rotate {
            self.seal()?;
            let seq = self.next_seq;
            self.next_seq += 1;
            let file = OpenOptions::new()
                .create_new(true)
                .append(true)
                .open(self.seg_path(seq))?;
            self.writer = Some(BufWriter::with_capacity(64 * 1024, file));
            self.segments.push_back(Segment {
                seq,
                bytes: 0,
                records: 0,
            });
        }
        let (Some(w), Some(seg)) = (self.writer.as_mut(), self.segments.back_mut()) else {
            return Err(io::Error::other("spool writer missing"));
        };
        let mut header = [0u8; HEADER as usize];
        header[..4].copy_from_slice(MAGIC);
        header[4..8].copy_from_slice(&(payload.len() as u32).to_le_bytes());
        header[8..].copy_from_slice(&crc32fast::hash(payload).to_le_bytes());
        w.write_all(&header)?;
        w.write_all(payload)?;
        seg.bytes += need;
        seg.records += 1;
        self.bytes += need;
        self.records += 1;
        Ok(true)
    }

    /// Writes buffered records out to the file (not fsynced).
    pub(crate) fn flush(&mut self) -> io::Result<()> {
        match self.writer.as_mut() {
            Some(w) => w.flush(),
            None => Ok(()),
        }
    }

    /// Closes the segment being written; the next append starts another.
    fn seal(&mut self) -> io::Result<()> {
        match self.writer.take() {
            Some(mut w) => w.flush(),
            None => Ok(()),
        }
    }

    /// Deletes the oldest segment that is not being replayed. False when
    /// there is none to delete.
    fn evict_oldest(&mut self, loss: &mut Loss) -> bool {
        let skip_front = !self.peeked.is_empty();
        let idx = usize::from(skip_front);
        if idx >= self.segments.len() {
            return false;
        }
        if idx == self.segments.len() - 1 && self.writer.is_some() {
            // The only candidate is being written: close it first.
            if self.seal().is_err() {
                return false;
            }
        }
        let Some(seg) = self.segments.remove(idx) else {
            return false;
        };
        if idx == 0 {
            self.reader = None;
            self.read_pos = 0;
        }
        self.bytes -= seg.bytes;
        self.records -= seg.records;
        loss.full += seg.records;
        self.remove_files(seg.seq);
        true
    }

    /// Reads the oldest undelivered records, up to `max_bytes` of payload
    /// (at least one), into `out`, without consuming them: call
    /// [`consume`](Self::consume) with how many were delivered. Damaged
    /// records at the read position are skipped and counted in `loss`.
    pub(crate) fn peek(
        &mut self,
        max_bytes: usize,
        out: &mut Vec<Vec<u8>>,
        loss: &mut Loss,
    ) -> io::Result<()> {
        if !self.peeked.is_empty() {
            self.unpeek();
        }
        out.clear();
        let mut taken = 0usize;
        while let Some(front) = self.segments.front() {
            let seq = front.seq;
            let end = front.bytes;
            if self.writer.is_some() && self.segments.len() == 1 {
                // Replay reads only closed segments.
                self.seal()?;
            }
            if self.reader.is_none() {
                let mut f = BufReader::with_capacity(256 * 1024, File::open(self.seg_path(seq))?);
                f.seek(SeekFrom::Start(self.read_pos))?;
                self.reader = Some(f);
            }
            let mut pos = self.peeked.last().copied().unwrap_or(self.read_pos);
            let seg_path = self.seg_path(seq);
            let Some(reader) = self.reader.as_mut() else {
                break;
            };
            while pos < end && (taken == 0 || taken < max_bytes) {
                match read_record(reader, end - pos)? {
                    Some(payload) => {
                        pos += HEADER + payload.len() as u64;
                        taken += payload.len();
                        out.push(payload);
                        self.peeked.push(pos);
                    }
                    None if self.peeked.is_empty() => {
                        // Damage at the read position: resynchronise on the
                        // next record that checks out, count one loss.
                        let next = resync(&seg_path, pos + 1, end)?;
                        loss.corrupt += 1;
                        let seg = &mut self.segments[0];
                        seg.records = seg.records.saturating_sub(1);
                        self.records = self.records.saturating_sub(1);
                        self.read_pos = next;
                        pos = next;
                        reader.seek(SeekFrom::Start(next))?;
                    }
                    None => {
                        // Deliver what came before the damage first.
                        return Ok(());
                    }
                }
            }
            if !out.is_empty() || pos < end {
                return Ok(());
            }
            // The front segment holds nothing more: delete it.
            self.finish_front();
        }
        Ok(())
    }

    /// Marks the first `n` records of the last [`peek`](Self::peek) delivered.
    pub(crate) fn consume(&mut self, n: usize) {
        if n == 0 || n > self.peeked.len() {
            return;
        }
        let pos = self.peeked[n - 1];
        let all = n == self.peeked.len();
        self.peeked.clear();
        let Some(front) = self.segments.front_mut() else {
            return;
        };
        front.records = front.records.saturating_sub(n as u64);
        self.records = self.records.saturating_sub(n as u64);
        self.read_pos = pos;
        if pos >= front.bytes || front.records == 0 {
            self.finish_front();
        } else {
            let seq = front.seq;
            // Progress survives a restart; a failed write only means a re-send.
            let _ = fs::write(self.pos_path(seq), pos.to_string());
            if !all {
                if let Some(r) = self.reader.as_mut() {
                    let _ = r.seek(SeekFrom::Start(pos));
                }
            }
        }
    }

    /// Forgets the last peek (nothing of it was delivered).
    pub(crate) fn unpeek(&mut self) {
        self.peeked.clear();
        if let Some(r) = self.reader.as_mut() {
            let _ = r.seek(SeekFrom::Start(self.read_pos));
        }
    }

    fn finish_front(&mut self) {
        if let Some(seg) = self.segments.pop_front() {
            self.bytes -= seg.bytes;
            self.records = self.records.saturating_sub(seg.records);
            self.remove_files(seg.seq);
        }
        self.reader = None;
        self.read_pos = 0;
        self.peeked.clear();
    }
}

/// Reads one record of at most `room` bytes; `None` when it is damaged
/// (bad magic, impossible length, checksum mismatch, cut short).
fn read_record(r: &mut impl Read, room: u64) -> io::Result<Option<Vec<u8>>> {
    let mut header = [0u8; HEADER as usize];
    if room < HEADER {
        return Ok(None);
    }
    if let Err(e) = r.read_exact(&mut header) {
        return if e.kind() == io::ErrorKind::UnexpectedEof {
            Ok(None)
        } else {
            Err(e)
        };
    }
    if &header[..4] != MAGIC {
        return Ok(None);
    }
    let len = u32::from_le_bytes([header[4], header[5], header[6], header[7]]) as u64;
    let crc = u32::from_le_bytes([header[8], header[9], header[10], header[11]]);
    if HEADER + len > room {
        return Ok(None);
    }
    let mut payload = vec![0u8; len as usize];
    if let Err(e) = r.read_exact(&mut payload) {
        return if e.kind() == io::ErrorKind::UnexpectedEof {
            Ok(None)
        } else {
            Err(e)
        };
    }
    if crc32fast::hash(&payload) != crc {
        return Ok(None);
    }
    Ok(Some(payload))
}

/// The offset of the next intact record at or after `from`, or `end`.
fn resync(path: &Path, from: u64, end: u64) -> io::Result<u64> {
    let mut data = Vec::new();
    let mut f = File::open(path)?;
    f.seek(SeekFrom::Start(from))?;
    f.take(end.saturating_sub(from)).read_to_end(&mut data)?;
    let mut i = 0;
    while i + HEADER as usize <= data.len() {
        if &data[i..i + 4] == MAGIC {
            let mut cur = &data[i..];
            if read_record(&mut cur, (data.len() - i) as u64)?.is_some() {
                return Ok(from + i as u64);
            }
        }
        i += 1;
    }
    Ok(end)
}

/// Counts the records of a segment from `start` by their headers; returns
/// (records, end of the last whole record, whether a damaged tail follows).
fn scan(path: &Path, start: u64) -> io::Result<(u64, u64, bool)> {
    let file = File::open(path)?;
    let len = file.metadata()?.len();
    let mut r = BufReader::with_capacity(256 * 1024, file);
    if start > len {
        return Ok((0, len, false));
    }
    r.seek(SeekFrom::Start(start))?;
    let mut pos = start;
    let mut records = 0;
    let mut header = [0u8; HEADER as usize];
    while pos < len {
        if len - pos < HEADER || r.read_exact(&mut header).is_err() || &header[..4] != MAGIC {
            return Ok((records, pos, true));
        }
        let n = u32::from_le_bytes([header[4], header[5], header[6], header[7]]) as u64;
        if pos + HEADER + n > len {
            return Ok((records, pos, true));
        }
        r.seek_relative(n as i64)?;
        pos += HEADER + n;
        records += 1;
    }
    Ok((records, pos, false))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "gelf-spool-{name}-{}-{}",
            std::process::id(),
            fastrand::u64(..)
        ));
        let _ = fs::remove_dir_all(&d);
        d
    }

    fn drain(s: &mut Spool) -> (Vec<Vec<u8>>, Loss) {
        let mut all = Vec::new();
        let mut loss = Loss::default();
        let mut batch = Vec::new();
        loop {
            s.peek(1000, &mut batch, &mut loss).unwrap();
            if batch.is_empty() {
                break;
            }
            s.consume(batch.len());
            all.append(&mut batch);
        }
        (all, loss)
    }

    #[test]
    fn replays_in_order_across_segments_and_reopen() {
        let dir = tmp("order");
        let (mut s, rec) = Spool::open(&dir, 1 << 20, SpoolFullPolicy::DropNewest).unwrap();
        assert_eq!(rec.records, 0);
        let mut loss = Loss::default();
        for i in 0..20_000u32 {
            assert!(s.append(format!("msg {i}").as_bytes(), &mut loss).unwrap());
        }
        assert!(s.segments.len() > 1, "segments rotate");
        let mut batch = Vec::new();
        s.peek(100, &mut batch, &mut loss).unwrap();
        s.consume(3);
        drop(s);
        let (mut s, rec) = Spool::open(&dir, 1 << 20, SpoolFullPolicy::DropNewest).unwrap();
        assert_eq!(rec.records, 19_997);
        let (all, loss) = drain(&mut s);
        assert_eq!(loss, Loss::default());
        assert_eq!(all.len(), 19_997);
        assert_eq!(all[0], b"msg 3");
        assert_eq!(all[19_996], b"msg 19999");
        assert_eq!((s.records, s.bytes), (0, 0));
        let left = fs::read_dir(&dir).unwrap().count();
        assert_eq!(left, 0, "delivered segments are deleted");
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn damaged_tail_and_flipped_byte_lose_only_those_records() {
        let dir = tmp("damage");
        let (mut s, _) = Spool::open(&dir, 1 << 20, SpoolFullPolicy::DropNewest).unwrap();
        let mut loss = Loss::default();
        for i in 0..100u32 {
            s.append(format!("record number {i:03}").as_bytes(), &mut loss)
                .unwrap();
        }
        s.flush().unwrap();
        drop(s);
        let path = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.extension().is_some_and(|x| x == "spool"))
            .unwrap();
        let mut data = fs::read(&path).unwrap();
        let rec = (HEADER + 17) as usize;
        data[10 * rec + 20] ^= 0xff; // payload of record 10
        data.truncate(data.len() - 5); // record 99 cut short
        fs::write(&path, &data).unwrap();
        let (mut s, rec) = Spool::open(&dir, 1 << 20, SpoolFullPolicy::DropNewest).unwrap();
        assert_eq!((rec.records, rec.corrupt_tail), (99, 1));
        let (all, loss) = drain(&mut s);
        assert_eq!(loss.corrupt, 1);
        assert_eq!(all.len(), 98);
        assert!(!all.iter().any(|m| m == b"record number 010"));
        assert_eq!(all.last().unwrap(), b"record number 098");
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn full_policies() {
        for policy in [SpoolFullPolicy::DropNewest, SpoolFullPolicy::DropOldest] {
            let dir = tmp("full");
            let max = 256 * 1024;
            let (mut s, _) = Spool::open(&dir, max, policy).unwrap();
            let mut loss = Loss::default();
            let payload = [b'x'; 1000];
            let mut refused = 0u64;
            for _ in 0..1000 {
                if !s.append(&payload, &mut loss).unwrap() {
                    refused += 1;
                }
            }
            assert!(s.bytes <= max);
            assert_eq!(s.records + refused + loss.full, 1000, "{policy:?}");
            match policy {
                SpoolFullPolicy::DropNewest => assert!(refused > 0 && loss.full == 0),
                SpoolFullPolicy::DropOldest => assert!(refused == 0 && loss.full > 0),
            }
            let (all, _) = drain(&mut s);
            assert_eq!(all.len() as u64, 1000 - refused - loss.full);
            let _ = fs::remove_dir_all(&dir);
        }
    }
}
