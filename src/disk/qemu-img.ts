/**
 * The qemu-img wrapper: every call with an argv array through host/exec.ts, `--output=json`
 * wherever qemu-img has it, the JSON validated with zod (unknown fields kept). Failures are
 * classified: QEMU's image lock → DISK_IN_USE, ENOSPC → DISK_FULL, the rest keep argv + stderr.
 * No policy here (overwrite, temp names, in-use checks): that is images.ts.
 */
import { z } from 'zod';
import { KvmError } from '../errors.js';
import { formatArgv, run } from '../host/exec.js';
import { qemuEscape } from '../qemu/escape.js';
import { qemuImgProgressListener, type OnProgress } from './progress.js';

export const QEMU_IMG = 'qemu-img';
export const QEMU_IO = 'qemu-io';

export const IMAGE_FORMATS = ['raw', 'qcow2', 'vmdk', 'vdi', 'vhdx', 'qed'] as const;
export type ImageFormat = (typeof IMAGE_FORMATS)[number];
export const PREALLOC_MODES = ['off', 'metadata', 'falloc', 'full'] as const;
export type Prealloc = (typeof PREALLOC_MODES)[number];

const bytes = z.number().int().nonnegative();

export const snapshotSchema = z.looseObject({
  id: z.string(),
  name: z.string(),
  'vm-state-size': bytes,
  'date-sec': z.number(),
  'date-nsec': z.number(),
  'vm-clock-sec': z.number(),
  'vm-clock-nsec': z.number(),
  icount: z.number().optional(),
});
export type ImageSnapshot = z.infer<typeof snapshotSchema>;

/** `qemu-img info --output=json`: the fields kvmctl reads are checked, the others pass through. */
export const imageInfoSchema = z.looseObject({
  filename: z.string(),
  format: z.string(),
  'virtual-size': bytes,
  'actual-size': bytes.optional(),
  'dirty-flag': z.boolean().optional(),
  'cluster-size': bytes.optional(),
  encrypted: z.boolean().optional(),
  'backing-filename': z.string().optional(),
  'full-backing-filename': z.string().optional(),
  'backing-filename-format': z.string().optional(),
  snapshots: z.array(snapshotSchema).optional(),
  'format-specific': z.looseObject({ type: z.string(), data: z.record(z.string(), z.unknown()).optional() }).optional(),
});
export type ImageInfo = z.infer<typeof imageInfoSchema>;

/** `qemu-img check --output=json`. */
export const checkSchema = z.looseObject({
  filename: z.string(),
  format: z.string(),
  'check-errors': z.number().int(),
  corruptions: z.number().int().optional(),
  leaks: z.number().int().optional(),
  'corruptions-fixed': z.number().int().optional(),
  'leaks-fixed': z.number().int().optional(),
  'image-end-offset': bytes.optional(),
  'total-clusters': z.number().int().optional(),
  'allocated-clusters': z.number().int().optional(),
  'fragmented-clusters': z.number().int().optional(),
  'compressed-clusters': z.number().int().optional(),
});
export type CheckReport = z.infer<typeof checkSchema>;

/** `qemu-img measure --output=json`. */
export const measureSchema = z.looseObject({ required: bytes, 'fully-allocated': bytes, bitmaps: bytes.optional() });
export type Measure = z.infer<typeof measureSchema>;

/** Parse qemu-img JSON output with a schema; a mismatch is a kvmctl/qemu-img version problem. */
export function parseJson<T extends z.ZodType>(text: string, schema: T, what: string): z.infer<T> {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new KvmError('QEMU_IMG_OUTPUT', `${what}: qemu-img did not print JSON (${(e as Error).message})`, {
      details: { output: text.slice(0, 500) },
    });
  }
  const r = schema.safeParse(raw);
  if (!r.success) {
    const issues = r.error.issues.map((i) => ({ path: i.path.join('.'), message: i.message }));
    throw new KvmError('QEMU_IMG_OUTPUT', `${what}: unexpected qemu-img JSON (${issues.map((i) => `${i.path}: ${i.message}`).join('; ')})`, {
      issues,
      hint: 'this qemu-img version prints something kvmctl does not know; report it with `qemu-img --version`',
    });
  }
  return r.data;
}

export const parseInfo = (text: string) => parseJson(text, imageInfoSchema, 'qemu-img info');
export const parseInfoChain = (text: string) => parseJson(text, z.array(imageInfoSchema).min(1), 'qemu-img info --backing-chain');
export const parseCheck = (text: string) => parseJson(text, checkSchema, 'qemu-img check');
export const parseMeasure = (text: string) => parseJson(text, measureSchema, 'qemu-img measure');

export type FailureKind = 'locked' | 'no-space' | 'not-found' | 'other';

/** What a qemu-img/qemu-io failure means, from its stderr. */
export function classifyFailure(stderr: string): FailureKind {
  if (/Failed to get (shared )?"[a-z ]+" lock|Is another process using the image/i.test(stderr)) return 'locked';
  if (/No space left on device|ENOSPC/i.test(stderr)) return 'no-space';
  if (/No such file or directory/i.test(stderr) && /Could not open|can't open/i.test(stderr)) return 'not-found';
  return 'other';
}

export type QemuImgOptions = { signal?: AbortSignal; onStdout?: (chunk: string) => void };

/**
 * Run `qemu-img ARGS` about image `subject`; on failure throw a classified KvmError. Returns
 * stdout. `okExit` lists exit codes that are not failures (check: 2 and 3 report problems).
 */
export async function qemuImg(args: string[], subject: string, opts: QemuImgOptions & { okExit?: number[] } = {}): Promise<{ stdout: string; stderr: string; exitCode: number }> {
  const argv = [QEMU_IMG, ...args];
  const r = await run(argv, { allowFailure: true, signal: opts.signal, onStdout: opts.onStdout });
  if (r.exitCode === 0 || opts.okExit?.includes(r.exitCode)) return r;
  throw failureError(argv, subject, r.stderr, r.exitCode, opts.signal);
}

export function failureError(argv: string[], subject: string, stderr: string, exitCode: number, signal?: AbortSignal): KvmError {
  const err = stderr.trim();
  const details = { argv, exitCode, stderr: err };
  if (signal?.aborted) return new KvmError('CANCELED', `${argv[0]} ${argv[1]} on ${subject}: canceled`, { details });
  if (exitCode === -1 && !err) {
    return new KvmError('QEMU_IMG_FAILED', `${argv[0]} ${argv[1]} on ${subject} did not finish (not installed, or killed by a signal)`, {
      hint: 'check that qemu-utils is installed (apt-get install qemu-utils)',
      details,
    });
  }
  switch (classifyFailure(err)) {
    case 'locked':
      return new KvmError('DISK_IN_USE', `${subject} is in use by another process (QEMU holds its image lock)`, {
        hint: 'stop the VM that uses it first; `kvmctl disk info` still works while it runs',
        details,
      });
    case 'no-space':
      return new KvmError('DISK_FULL', `no space left on the filesystem of ${subject}`, { hint: 'free space or pick another directory', details });
    case 'not-found':
      return new KvmError('DISK_NOT_FOUND', `${subject} does not exist`, { exit: 2, details });
    default:
      return new KvmError('QEMU_IMG_FAILED', `${formatArgv(argv)}: exit ${exitCode}${err ? ` (${err})` : ''}`, { details });
  }
}

/** `qemu-img info --output=json`; `forceShare` (-U) reads an image a running QEMU holds. */
export async function info(path: string, opts: { forceShare?: boolean; format?: string } = {}): Promise<ImageInfo> {
  const args = ['info', '--output=json', ...(opts.format ? ['-f', opts.format] : []), ...(opts.forceShare ? ['-U'] : []), path];
  return parseInfo((await qemuImg(args, path)).stdout);
}

/** The whole backing chain, the image itself first. */
export async function infoChain(path: string, opts: { forceShare?: boolean } = {}): Promise<ImageInfo[]> {
  const args = ['info', '--output=json', '--backing-chain', ...(opts.forceShare ? ['-U'] : []), path];
  return parseInfoChain((await qemuImg(args, path)).stdout);
}

export type CreateArgs = {
  path: string;
  format: string;
  /** Bytes; may be left out for an overlay (inherits the backing file's size). */
  size?: number;
  prealloc?: Prealloc;
  clusterSize?: number;
  backing?: { file: string; format: string };
};

/** The argv of `qemu-img create` (pure; exported for tests). */
export function createArgv(a: CreateArgs): string[] {
  const o: string[] = [];
  if (a.prealloc && a.prealloc !== 'off') o.push(`preallocation=${a.prealloc}`);
  if (a.clusterSize !== undefined) o.push(`cluster_size=${a.clusterSize}`);
  return [
    'create', '-q', '-f', a.format,
    ...(o.length ? ['-o', o.join(',')] : []),
    ...(a.backing ? ['-b', a.backing.file, '-F', a.backing.format] : []),
    a.path,
    ...(a.size !== undefined ? [String(a.size)] : []),
  ];
}

export async function create(a: CreateArgs, opts: QemuImgOptions = {}): Promise<void> {
  await qemuImg(createArgv(a), a.path, opts);
}

/** `qemu-img resize`; `shrink` must be set when the new size is smaller. */
export async function resize(path: string, format: string, newSize: number, opts: { shrink?: boolean } = {}): Promise<void> {
  await qemuImg(['resize', '-q', '-f', format, ...(opts.shrink ? ['--shrink'] : []), path, String(newSize)], path);
}

export type ConvertArgs = {
  src: string;
  srcFormat: string;
  dst: string;
  dstFormat: string;
  prealloc?: Prealloc;
  clusterSize?: number;
  /** Bytes per second (qemu-img -r), so a copy does not starve running VMs of I/O. */
  rateLimit?: number;
};

export function convertArgv(a: ConvertArgs, progress: boolean): string[] {
  const o: string[] = [];
  if (a.prealloc && a.prealloc !== 'off') o.push(`preallocation=${a.prealloc}`);
  if (a.clusterSize !== undefined) o.push(`cluster_size=${a.clusterSize}`);
  return [
    'convert', ...(progress ? ['-p'] : []), '-f', a.srcFormat, '-O', a.dstFormat,
    ...(o.length ? ['-o', o.join(',')] : []),
    ...(a.rateLimit ? ['-r', String(a.rateLimit)] : []),
    a.src, a.dst,
  ];
}

/** `qemu-img convert -p`, reporting progress (0..100, increasing) as it goes. */
export async function convert(a: ConvertArgs, opts: { signal?: AbortSignal; onProgress?: OnProgress } = {}): Promise<void> {
  await qemuImg(convertArgv(a, !!opts.onProgress), a.dst, {
    signal: opts.signal,
    onStdout: opts.onProgress ? qemuImgProgressListener(opts.onProgress) : undefined,
  });
}

export type SnapshotOp = 'create' | 'apply' | 'delete';
const SNAP_FLAG: Record<SnapshotOp, string> = { create: '-c', apply: '-a', delete: '-d' };

/** `qemu-img snapshot` has no -f: the format is given with --image-opts (no probing). */
export function snapshotArgv(op: SnapshotOp, path: string, format: string, name: string): string[] {
  return ['snapshot', '-q', '--image-opts', SNAP_FLAG[op], name, `driver=${qemuEscape(format)},file.driver=file,file.filename=${qemuEscape(path)}`];
}

export async function snapshot(op: SnapshotOp, path: string, format: string, name: string): Promise<void> {
  await qemuImg(snapshotArgv(op, path, format, name), path);
}

export type CheckOutcome =
  | { supported: false; format: string }
  | { supported: true; status: 'clean' | 'corrupt' | 'leaks'; report: CheckReport };

/** `qemu-img check`: exit 0 clean, 2 corruptions, 3 leaks, 63 "format does not support checks". */
export async function check(path: string, format: string): Promise<CheckOutcome> {
  const r = await qemuImg(['check', '--output=json', '-f', format, path], path, { okExit: [2, 3, 63] });
  if (r.exitCode === 63) return { supported: false, format };
  const report = parseCheck(r.stdout);
  return { supported: true, status: r.exitCode === 2 ? 'corrupt' : r.exitCode === 3 ? 'leaks' : 'clean', report };
}

/** How many bytes a conversion of `src` into `format` needs (`qemu-img measure`). */
export async function measure(src: string, srcFormat: string, format: string): Promise<Measure> {
  return parseMeasure((await qemuImg(['measure', '--output=json', '-f', srcFormat, '-O', format, src], src)).stdout);
}

/**
 * Ask QEMU's own lock whether the file could be opened for writing right now: `qemu-io` opens the
 * file layer read-write (no format driver, nothing written) and flushes. A running QEMU that uses
 * the image (or has it as a backing file) holds a lock that makes this fail.
 * Returns 'free', 'locked', or 'unknown' (could not tell, e.g. no write permission).
 */
export async function probeWriteLock(path: string): Promise<{ state: 'free' | 'locked' | 'unknown'; stderr: string }> {
  const r = await run([QEMU_IO, '--image-opts', '-c', 'flush', `driver=file,filename=${qemuEscape(path)}`], { allowFailure: true });
  if (r.exitCode === 0) return { state: 'free', stderr: '' };
  return { state: classifyFailure(r.stderr) === 'locked' ? 'locked' : 'unknown', stderr: r.stderr.trim() };
}
