/**
 * A fixed-size ring file of time-series samples (one per VM or host and resolution), written by
 * `kvmctl serve`'s metrics recorder. No native module, no database: a header and `slots` fixed
 * slots; the slot of time t is floor(t / step) mod slots, and each slot stores its own time, so a
 * slot written a lap ago is recognised as stale instead of being read as now. Writing a sample
 * is one positioned write; a restart reopens the same file and finds every sample it had.
 *
 * Layout (little-endian):
 *   header 64 bytes: "KVMRING1", u32 version, u32 slots, f64 stepMs, u32 fields, u32 slotBytes, rest 0
 *   fields names: 32 bytes each (UTF-8, 0-padded)
 *   slots: f64 time (ms since the epoch, the slot's bucket start; 0 = never written), f32 × fields
 *          (NaN = no value, e.g. no balloon device or the first CPU sample)
 *
 * A file whose header (step, slot count or field names) differs from what the caller asks for
 * is replaced: a resolution change makes old samples meaningless at the new positions.
 */
import fs from 'node:fs';
import path from 'node:path';

const MAGIC = 'KVMRING1';
const VERSION = 1;
const HEADER = 64;
const NAME_BYTES = 32;

export type RingSpec = { stepMs: number; slots: number; fields: readonly string[] };
export type Row = { t: number; v: number[] };

export class RingFile {
  private readonly slotBytes: number;
  private readonly dataStart: number;
  private fd: number;

  private constructor(
    readonly file: string,
    readonly spec: RingSpec,
    fd: number,
  ) {
    this.slotBytes = 8 + 4 * spec.fields.length;
    this.dataStart = HEADER + NAME_BYTES * spec.fields.length;
    this.fd = fd;
  }

  /** Open (or create, or replace when its shape differs) the ring file. */
  static open(file: string, spec: RingSpec): RingFile {
    if (!(spec.stepMs > 0) || !(spec.slots > 0) || spec.fields.length === 0) throw new Error(`bad ring spec for ${file}`);
    fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
    let fd: number | undefined;
    try {
      fd = fs.openSync(file, 'r+');
      if (!RingFile.headerMatches(fd, spec)) {
        fs.closeSync(fd);
        fd = undefined;
      }
    } catch {
      fd = undefined;
    }
    if (fd === undefined) fd = RingFile.create(file, spec);
    return new RingFile(file, spec, fd);
  }

  private static headerBytes(spec: RingSpec): Buffer {
    const h = Buffer.alloc(HEADER + NAME_BYTES * spec.fields.length);
    h.write(MAGIC, 0, 'latin1');
    h.writeUInt32LE(VERSION, 8);
    h.writeUInt32LE(spec.slots, 12);
    h.writeDoubleLE(spec.stepMs, 16);
    h.writeUInt32LE(spec.fields.length, 24);
    h.writeUInt32LE(8 + 4 * spec.fields.length, 28);
    spec.fields.forEach((f, i) => {
      if (Buffer.byteLength(f) > NAME_BYTES) throw new Error(`field name too long: ${f}`);
      h.write(f, HEADER + i * NAME_BYTES, 'utf8');
    });
    return h;
  }

  private static headerMatches(fd: number, spec: RingSpec): boolean {
    const want = RingFile.headerBytes(spec);
    const got = Buffer.alloc(want.length);
    if (fs.readSync(fd, got, 0, want.length, 0) !== want.length || !got.equals(want)) return false;
    return fs.fstatSync(fd).size === want.length + spec.slots * (8 + 4 * spec.fields.length);
  }

  private static create(file: string, spec: RingSpec): number {
    const tmp = `${file}.tmp${process.pid}`;
    const fd = fs.openSync(tmp, 'w+', 0o600);
    const h = RingFile.headerBytes(spec);
    fs.writeSync(fd, h, 0, h.length, 0);
    fs.ftruncateSync(fd, h.length + spec.slots * (8 + 4 * spec.fields.length)); // sparse zeros: time 0 = empty
    fs.renameSync(tmp, file);
    return fd;
  }

  /** The bucket start of time t. */
  bucket(t: number): number {
    return Math.floor(t / this.spec.stepMs) * this.spec.stepMs;
  }

  private offset(t: number): number {
    const idx = Math.floor(t / this.spec.stepMs) % this.spec.slots;
    return this.dataStart + idx * this.slotBytes;
  }

  /** Store values at time t (its bucket): a later write in the same bucket replaces it. */
  write(t: number, values: readonly (number | null | undefined)[]): void {
    const b = Buffer.alloc(this.slotBytes);
    b.writeDoubleLE(this.bucket(t), 0);
    for (let i = 0; i < this.spec.fields.length; i++) {
      const v = values[i];
      b.writeFloatLE(v === null || v === undefined || !Number.isFinite(v) ? NaN : v, 8 + 4 * i);
    }
    fs.writeSync(this.fd, b, 0, b.length, this.offset(t));
  }

  /** Every stored sample with from ≤ t ≤ to (bucket times), oldest first. NaN values come back as NaN. */
  read(from: number, to: number): Row[] {
    const { stepMs, slots, fields } = this.spec;
    const first = Math.max(this.bucket(from), this.bucket(to) - (slots - 1) * stepMs);
    const last = this.bucket(to);
    if (last < first) return [];
    const n = Math.round((last - first) / stepMs) + 1;
    // Only the slots of [first, last]: one read, or two when the range wraps past the file's end.
    const i0 = Math.floor(first / stepMs) % slots;
    const buf = Buffer.alloc(n * this.slotBytes);
    const head = Math.min(n, slots - i0);
    fs.readSync(this.fd, buf, 0, head * this.slotBytes, this.dataStart + i0 * this.slotBytes);
    if (head < n) fs.readSync(this.fd, buf, head * this.slotBytes, (n - head) * this.slotBytes, this.dataStart);
    const out: Row[] = [];
    for (let k = 0; k < n; k++) {
      const t = first + k * stepMs;
      const off = k * this.slotBytes;
      if (buf.readDoubleLE(off) !== t) continue; // empty, or left from an earlier lap
      const v: number[] = [];
      for (let i = 0; i < fields.length; i++) v.push(buf.readFloatLE(off + 8 + 4 * i));
      out.push({ t, v });
    }
    return out;
  }

  close(): void {
    if (this.fd >= 0) fs.closeSync(this.fd);
    this.fd = -1;
  }
}

/** Per-field mean of the rows, ignoring NaN (NaN when a field has no value at all). Pure. */
export function meanRows(rows: Row[], fields: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < fields; i++) {
    let s = 0;
    let n = 0;
    for (const r of rows) {
      const x = r.v[i]!;
      if (!Number.isNaN(x)) {
        s += x;
        n++;
      }
    }
    out.push(n ? s / n : NaN);
  }
  return out;
}

/**
 * A fine and a coarse ring for one series (e.g. one VM): every sample goes into the fine ring,
 * and the coarse slot it falls in is recomputed as the mean of the fine samples of that coarse
 * bucket (read back from the fine ring: no in-memory state, so a restart mid-bucket loses
 * nothing). Defaults: 10 s × 8640 = 1 day, 5 min × 8640 = 30 days.
 */
export class RingPair {
  readonly fine: RingFile;
  readonly coarse: RingFile;
  constructor(base: string, fields: readonly string[], fineStepMs = 10_000, slots = 8640, coarseFactor = 30) {
    this.fine = RingFile.open(`${base}.fine.ring`, { stepMs: fineStepMs, slots, fields });
    this.coarse = RingFile.open(`${base}.coarse.ring`, { stepMs: fineStepMs * coarseFactor, slots, fields });
  }

  write(t: number, values: readonly (number | null | undefined)[]): void {
    this.fine.write(t, values);
    const cb = this.coarse.bucket(t);
    const rows = this.fine.read(cb, cb + this.coarse.spec.stepMs - 1);
    this.coarse.write(cb, meanRows(rows, this.fine.spec.fields.length));
  }

  close(): void {
    this.fine.close();
    this.coarse.close();
  }
}
