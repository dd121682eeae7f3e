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
//!
//! Failures are accounted, never hidden:
//! - a write that fails (disk full, I/O error) or is cut short leaves the
//!   file cut back to its last whole record; the messages not stored are
//!   reported to the caller as failed ([`Fate::Failed`]), and the spool
//!   refuses writes for [`PAUSE_AFTER_ERROR`] rather than hitting a full disk
//!   for every event;
//! - `bytes` is what the segment files hold on disk;
//! - records that cannot be replayed (damaged, or their file deleted) are
//!   counted in [`Loss::corrupt`];
//! - one process at a time: the directory is locked (`spool.lock`, an
//!   advisory `flock`), and a second process fails at open.

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// What to drop when the spool is full.
///
/// ```
/// use gelf_tracing::{GelfLayer, SpoolFullPolicy};
/// let b = GelfLayer::builder().spool_full_policy(SpoolFullPolicy::DropOldest);
/// # drop(b);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
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
/// The lock file that keeps a second process out of the directory.
pub(crate) const LOCK_FILE: &str = "spool.lock";
/// After a failed write the spool refuses writes this long.
pub(crate) const PAUSE_AFTER_ERROR: Duration = Duration::from_secs(1);
/// Records are written to the file in pieces of about this size.
const WRITE_PIECE: usize = 256 * 1024;

struct Segment {
    seq: u64,
    /// End of the last whole record: replay reads up to here.
    len: u64,
    /// Bytes the file holds on disk (more than `len` only when a failed
    /// write could not be cut back).
    disk: u64,
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
    writer: Option<File>,
    /// Reading the front segment.
    reader: Option<BufReader<File>>,
    /// Offset of the first undelivered record in the front segment.
    read_pos: u64,
    /// End offsets of the records handed out by the last `peek`.
    peeked: Vec<u64>,
    next_seq: u64,
    /// The locked `spool.lock` (the lock lasts as long as the handle).
    lock: Option<File>,
    /// Writes are refused until then, after a failure.
    paused_until: Option<Instant>,
    /// Records being appended, and where each ends in `buf`.
    buf: Vec<u8>,
    buf_ends: Vec<(usize, usize)>,
    /// Bytes in all segment files, on disk.
    pub(crate) bytes: u64,
    /// Records not yet delivered.
    pub(crate) records: u64,
}

/// What changed in a spool operation, for the counters.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Loss {
    /// Records deleted because the spool was full.
    pub(crate) full: u64,
    /// Damaged or missing records skipped.
    pub(crate) corrupt: u64,
}

/// What became of one message given to [`Spool::append`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fate {
    /// In a segment file, whole.
    Stored,
    /// Refused by the full policy (or larger than the whole spool).
    Refused,
    /// Not stored: a write failed, or the spool is paused after a failure.
    Failed,
}

/// The outcome of [`Spool::append`]: one fate per message, in order.
#[derive(Debug)]
pub(crate) struct Appended {
    pub(crate) fates: Vec<Fate>,
    /// The failure behind the `Failed` fates, when it happened now (not when
    /// the spool was already paused).
    pub(crate) error: Option<io::Error>,
}

impl Appended {
    pub(crate) fn count(&self, fate: Fate) -> u64 {
        self.fates.iter().filter(|&&f| f == fate).count() as u64
    }
}

/// Records found in the spool directory when it was opened.
pub(crate) struct Recovered {
    pub(crate) records: u64,
    pub(crate) corrupt_tail: u64,
}

/// Takes the directory's lock; `WouldBlock` when another process holds it.
fn take_lock(dir: &Path) -> io::Result<File> {
    let f = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join(LOCK_FILE))?;
    match f.try_lock() {
        Ok(()) => Ok(f),
        Err(TryLockError::WouldBlock) => Err(io::Error::new(
            io::ErrorKind::WouldBlock,
            "another process (or layer) uses this spool directory",
        )),
        Err(TryLockError::Error(e)) => Err(e),
    }
}

impl Spool {
    /// Opens (creating) and locks the directory, and takes stock of segments
    /// left by an earlier process. A damaged tail of a segment is cut off and
    /// counted. Fails with `WouldBlock` when another process holds the lock.
    pub(crate) fn open(
        dir: &Path,
        max_bytes: u64,
        policy: SpoolFullPolicy,
    ) -> io::Result<(Self, Recovered)> {
        fs::create_dir_all(dir)?;
        let lock = take_lock(dir)?;
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
            lock: Some(lock),
            paused_until: None,
            buf: Vec::new(),
            buf_ends: Vec::new(),
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
                len: good_end,
                disk: good_end,
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

    /// Whether writes are refused now, after a failure.
    pub(crate) fn paused(&self) -> bool {
        self.paused_until.is_some_and(|t| Instant::now() < t)
    }

    /// Appends messages in order and says what became of each: stored,
    /// refused by the full policy (`loss` counts what `DropOldest` deleted),
    /// or failed. After a failure the rest of the batch fails too, and so
    /// does every append for [`PAUSE_AFTER_ERROR`].
    pub(crate) fn append(&mut self, frames: &[&[u8]], loss: &mut Loss) -> Appended {
        let mut out = Appended {
            fates: vec![Fate::Failed; frames.len()],
            error: None,
        };
        if self.paused() {
            return out;
        }
        self.paused_until = None;
        if self.writer_unlinked() {
            // The file (or its directory) was deleted under us: what it
            // holds will be counted as lost at replay; start a new one.
            self.seal();
        }
        self.buf.clear();
        self.buf_ends.clear();
        for (i, f) in frames.iter().enumerate() {
            let need = HEADER + f.len() as u64;
            if need > self.max_bytes {
                out.fates[i] = Fate::Refused;
                continue;
            }
            let mut refused = false;
            while self.bytes + self.buf.len() as u64 + need > self.max_bytes {
                if self.policy == SpoolFullPolicy::DropNewest {
                    refused = true;
                    break;
                }
                if !self.buf.is_empty() && !self.write_out(&mut out) {
                    return out;
                }
                if !self.evict_oldest(loss) {
                    refused = true;
                    break;
                }
            }
            if refused {
                out.fates[i] = Fate::Refused;
                continue;
            }
            let rotate = match (self.writer.as_ref(), self.segments.back()) {
                (Some(_), Some(seg)) => seg.len + self.buf.len() as u64 + need > self.segment_max,
                _ => true,
            };
            if rotate {
                if !self.buf.is_empty() && !self.write_out(&mut out) {
                    return out;
                }
                if let Err(e) = self.open_segment() {
                    self.fail(&mut out, e);
                    return out;
                }
            }
            self.buf.extend_from_slice(MAGIC);
            self.buf.extend_from_slice(&(f.len() as u32).to_le_bytes());
            self.buf
                .extend_from_slice(&crc32fast::hash(f).to_le_bytes());
            self.buf.extend_from_slice(f);
            self.buf_ends.push((i, self.buf.len()));
            if self.buf.len() >= WRITE_PIECE && !self.write_out(&mut out) {
                return out;
            }
        }
        if !self.buf.is_empty() {
            self.write_out(&mut out);
        }
        out
    }

    fn fail(&mut self, out: &mut Appended, e: io::Error) {
        self.writer = None;
        self.paused_until = Some(Instant::now() + PAUSE_AFTER_ERROR);
        out.error = Some(e);
    }

    /// Starts a new segment file, re-creating the directory (and its lock)
    /// if it vanished.
    fn open_segment(&mut self) -> io::Result<()> {
        self.writer = None;
        if !self.dir.join(LOCK_FILE).exists() {
            // The directory was removed or emptied under us: take it again,
            // unless another process has meanwhile.
            self.lock = None;
            fs::create_dir_all(&self.dir)?;
            self.lock = Some(take_lock(&self.dir)?);
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        let file = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(self.seg_path(seq))?;
        self.writer = Some(file);
        self.segments.push_back(Segment {
            seq,
            len: 0,
            disk: 0,
            records: 0,
        });
        Ok(())
    }

    /// Writes the buffered records to the back segment. On failure (an
    /// error, or the disk refusing more bytes) the file is cut back to its
    /// last whole record, the records after it fail, and the spool pauses.
    /// False on failure.
    fn write_out(&mut self, out: &mut Appended) -> bool {
        let (Some(w), Some(seg)) = (self.writer.as_mut(), self.segments.back_mut()) else {
            let e = io::Error::other("spool segment not open");
            self.fail(out, e);
            return false;
        };
        let mut written = 0usize;
        let mut error = None;
        while written < self.buf.len() {
            match w.write(&self.buf[written..]) {
                Ok(0) => {
                    error = Some(io::Error::new(
                        io::ErrorKind::StorageFull,
                        "the disk accepted no more bytes",
                    ));
                    break;
                }
                Ok(n) => written += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    error = Some(e);
                    break;
                }
            }
        }
        let whole = self
            .buf_ends
            .iter()
            .take_while(|&&(_, end)| end <= written)
            .count();
        let good = if whole == 0 {
            0
        } else {
            self.buf_ends[whole - 1].1
        };
        for &(i, _) in &self.buf_ends[..whole] {
            out.fates[i] = Fate::Stored;
        }
        let disk_before = seg.disk;
        seg.len += good as u64;
        seg.records += whole as u64;
        self.records += whole as u64;
        seg.disk = seg.len;
        if good < written {
            // A record cut short: remove it so replay never sees half of it.
            let cut = w.set_len(seg.len);
            if cut.is_err() {
                seg.disk = w
                    .metadata()
                    .map_or(seg.len + (written - good) as u64, |m| m.len());
            }
        }
        self.bytes = self.bytes - disk_before + seg.disk;
        self.buf.clear();
        self.buf_ends.clear();
        match error {
            None => true,
            Some(e) => {
                if seg.records == 0 && seg.disk == 0 {
                    let seq = seg.seq;
                    self.segments.pop_back();
                    self.remove_files(seq);
                }
                self.fail(out, e);
                false
            }
        }
    }

    /// True when the segment being written no longer has a name on disk.
    #[cfg(unix)]
    fn writer_unlinked(&self) -> bool {
        use std::os::unix::fs::MetadataExt;
        self.writer
            .as_ref()
            .is_some_and(|w| w.metadata().map_or(true, |m| m.nlink() == 0))
    }

    #[cfg(not(unix))]
    fn writer_unlinked(&self) -> bool {
        false
    }

    /// Closes the segment being written; the next append starts another.
    fn seal(&mut self) {
        self.writer = None;
    }

    /// Deletes the oldest segment that is not being replayed. False when
    /// there is none to delete.
    fn evict_oldest(&mut self, loss: &mut Loss) -> bool {
        let skip_front = !self.peeked.is_empty();
        let idx = usize::from(skip_front);
        if idx >= self.segments.len() {
            return false;
        }
        if idx == self.segments.len() - 1 {
            // The only candidate is being written: close it first.
            self.seal();
        }
        let Some(seg) = self.segments.remove(idx) else {
            return false;
        };
        if idx == 0 {
            self.reader = None;
            self.read_pos = 0;
        }
        self.bytes -= seg.disk;
        self.records -= seg.records;
        loss.full += seg.records;
        self.remove_files(seg.seq);
        true
    }

    /// Reads the oldest undelivered records, up to `max_bytes` of payload
    /// (at least one), into `out`, without consuming them: call
    /// [`consume`](Self::consume) with how many were delivered. Damaged
    /// records at the read position, and segments whose file is gone, are
    /// skipped and counted in `loss`.
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
            let end = front.len;
            if self.writer.is_some() && self.segments.len() == 1 {
                // Replay reads only closed segments.
                self.seal();
            }
            if self.reader.is_none() {
                let file = match File::open(self.seg_path(seq)) {
                    Ok(f) => f,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {
                        // Deleted by hand: what it held is lost, counted.
                        self.finish_front(loss);
                        continue;
                    }
                    Err(e) => return Err(e),
                };
                let mut f = BufReader::with_capacity(256 * 1024, file);
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
                        let next = match resync(&seg_path, pos + 1, end) {
                            Ok(n) => n,
                            Err(e) if e.kind() == io::ErrorKind::NotFound => end,
                            Err(e) => return Err(e),
                        };
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
            self.finish_front(loss);
        }
        Ok(())
    }

    /// Marks the first `n` records of the last [`peek`](Self::peek) delivered.
    pub(crate) fn consume(&mut self, n: usize, loss: &mut Loss) {
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
        if pos >= front.len || front.records == 0 {
            self.finish_front(loss);
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

    /// Deletes the front segment. Records it still counts could not be
    /// read back: they are counted as lost, never just forgotten.
    fn finish_front(&mut self, loss: &mut Loss) {
        if let Some(seg) = self.segments.pop_front() {
            self.bytes -= seg.disk;
            self.records = self.records.saturating_sub(seg.records);
            loss.corrupt += seg.records;
            if self.writer.is_some() && self.segments.is_empty() {
                self.seal();
            }
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

    fn app(s: &mut Spool, payload: &[u8], loss: &mut Loss) -> Fate {
        let a = s.append(&[payload], loss);
        assert!(a.error.is_none(), "{:?}", a.error);
        a.fates[0]
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
            s.consume(batch.len(), &mut loss);
            all.append(&mut batch);
        }
        (all, loss)
    }

    /// What the segment files hold on disk.
    fn disk_bytes(dir: &Path) -> u64 {
        fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "spool"))
            .map(|p| fs::metadata(p).unwrap().len())
            .sum()
    }

    #[test]
    fn replays_in_order_across_segments_and_reopen() {
        let dir = tmp("order");
        let (mut s, rec) = Spool::open(&dir, 1 << 20, SpoolFullPolicy::DropNewest).unwrap();
        assert_eq!(rec.records, 0);
        let mut loss = Loss::default();
        for i in 0..20_000u32 {
            assert_eq!(
                app(&mut s, format!("msg {i}").as_bytes(), &mut loss),
                Fate::Stored
            );
        }
        assert!(s.segments.len() > 1, "segments rotate");
        assert_eq!(s.bytes, disk_bytes(&dir));
        let mut batch = Vec::new();
        s.peek(100, &mut batch, &mut loss).unwrap();
        s.consume(3, &mut loss);
        drop(s);
        let (mut s, rec) = Spool::open(&dir, 1 << 20, SpoolFullPolicy::DropNewest).unwrap();
        assert_eq!(rec.records, 19_997);
        let (all, loss) = drain(&mut s);
        assert_eq!(loss, Loss::default());
        assert_eq!(all.len(), 19_997);
        assert_eq!(all[0], b"msg 3");
        assert_eq!(all[19_996], b"msg 19999");
        assert_eq!((s.records, s.bytes), (0, 0));
        let left: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left, [LOCK_FILE], "delivered segments are deleted");
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_batch_is_stored_in_order_with_one_fate_each() {
        let dir = tmp("batch");
        let (mut s, _) = Spool::open(&dir, 1 << 20, SpoolFullPolicy::DropNewest).unwrap();
        let frames: Vec<Vec<u8>> = (0..5000).map(|i| format!("m{i}").into_bytes()).collect();
        let refs: Vec<&[u8]> = frames.iter().map(Vec::as_slice).collect();
        let mut loss = Loss::default();
        let a = s.append(&refs, &mut loss);
        assert_eq!(a.count(Fate::Stored), 5000);
        assert_eq!(s.records, 5000);
        assert_eq!(s.bytes, disk_bytes(&dir));
        let (all, _) = drain(&mut s);
        assert_eq!(all, frames);
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn damaged_tail_and_flipped_byte_lose_only_those_records() {
        let dir = tmp("damage");
        let (mut s, _) = Spool::open(&dir, 1 << 20, SpoolFullPolicy::DropNewest).unwrap();
        let mut loss = Loss::default();
        for i in 0..100u32 {
            app(
                &mut s,
                format!("record number {i:03}").as_bytes(),
                &mut loss,
            );
        }
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
    fn a_segment_cut_short_under_the_spool_counts_the_missing_records() {
        let dir = tmp("cut");
        let (mut s, _) = Spool::open(&dir, 1 << 20, SpoolFullPolicy::DropNewest).unwrap();
        let mut loss = Loss::default();
        for i in 0..100u32 {
            app(
                &mut s,
                format!("record number {i:03}").as_bytes(),
                &mut loss,
            );
        }
        let path = s.seg_path(s.segments[0].seq);
        let rec = HEADER + 17;
        // Someone truncates the file to 40 whole records while it waits.
        OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(40 * rec)
            .unwrap();
        let (all, loss) = drain(&mut s);
        assert_eq!(all.len(), 40);
        assert_eq!(loss.corrupt, 60, "every missing record is counted");
        assert_eq!((s.records, s.bytes), (0, 0));
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_segment_deleted_mid_replay_is_counted_and_replay_goes_on() {
        let dir = tmp("deleted");
        // 1 MiB spool: 128 KiB segments.
        let (mut s, _) = Spool::open(&dir, 1 << 20, SpoolFullPolicy::DropNewest).unwrap();
        let mut loss = Loss::default();
        let payload = [b'x'; 1000];
        for _ in 0..400 {
            assert_eq!(app(&mut s, &payload, &mut loss), Fate::Stored);
        }
        assert!(s.segments.len() >= 3);
        let mut batch = Vec::new();
        s.peek(5_000, &mut batch, &mut loss).unwrap();
        s.consume(batch.len(), &mut loss);
        let delivered = batch.len() as u64;
        // The second segment vanishes while the first is being replayed.
        let second = &s.segments[1];
        let (seq, in_second) = (second.seq, second.records);
        fs::remove_file(s.seg_path(seq)).unwrap();
        let (all, loss) = drain(&mut s);
        assert_eq!(loss.corrupt, in_second);
        assert_eq!(delivered + all.len() as u64 + in_second, 400);
        assert_eq!((s.records, s.bytes), (0, 0));
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_second_opener_is_refused_while_the_first_holds_the_directory() {
        let dir = tmp("lock");
        let (first, _) = Spool::open(&dir, 1 << 20, SpoolFullPolicy::DropNewest).unwrap();
        let err = Spool::open(&dir, 1 << 20, SpoolFullPolicy::DropNewest)
            .err()
            .expect("the directory is locked");
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
        drop(first);
        assert!(Spool::open(&dir, 1 << 20, SpoolFullPolicy::DropNewest).is_ok());
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_vanished_directory_is_made_again_and_its_lost_records_counted() {
        let dir = tmp("vanish");
        let (mut s, _) = Spool::open(&dir, 1 << 20, SpoolFullPolicy::DropNewest).unwrap();
        let mut loss = Loss::default();
        for i in 0..50u32 {
            app(&mut s, format!("before {i}").as_bytes(), &mut loss);
        }
        fs::remove_dir_all(&dir).unwrap();
        // The open segment's file is gone with the directory; new records
        // start a new segment in a new directory.
        for i in 0..10u32 {
            assert_eq!(
                app(&mut s, format!("after {i}").as_bytes(), &mut loss),
                Fate::Stored
            );
        }
        assert!(dir.join(LOCK_FILE).exists(), "the lock is taken again");
        let (all, loss) = drain(&mut s);
        assert_eq!(loss.corrupt, 50);
        assert_eq!(all.len(), 10);
        assert_eq!(all[0], b"after 0");
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
                if app(&mut s, &payload, &mut loss) == Fate::Refused {
                    refused += 1;
                }
            }
            assert!(s.bytes <= max);
            assert_eq!(s.bytes, disk_bytes(&dir));
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
