/**
 * Progress of long disk operations: parsing `qemu-img -p` output, watching a file fill up during
 * full preallocation, and drawing it (a bar on a terminal, sparse lines otherwise).
 */
import fs from 'node:fs';

/** 0..100, never decreasing, reported by a long operation. */
export type OnProgress = (percent: number) => void;

/**
 * `qemu-img convert -p` writes `    (12.34/100%)\r` to stdout, without newlines. Returns every
 * percentage found in a chunk. A record may be split across chunks, so keep the returned `rest`
 * and prepend it to the next chunk.
 */
export function parseQemuImgProgress(chunk: string): { percents: number[]; rest: string } {
  const percents: number[] = [];
  const re = /\((\d+(?:\.\d+)?)\/100%\)/g;
  let m: RegExpExecArray | null;
  let end = 0;
  while ((m = re.exec(chunk))) {
    percents.push(Math.min(100, Number(m[1])));
    end = re.lastIndex;
  }
  const tail = chunk.slice(end);
  const open = tail.lastIndexOf('(');
  return { percents, rest: open >= 0 ? tail.slice(open) : '' };
}

/** A stdout listener for `run({ onStdout })` that turns qemu-img progress output into calls. */
export function qemuImgProgressListener(onProgress: OnProgress): (chunk: string) => void {
  let rest = '';
  let last = -1;
  return (chunk) => {
    const r = parseQemuImgProgress(rest + chunk);
    rest = r.rest.length > 64 ? '' : r.rest;
    for (const p of r.percents) {
      if (p > last) {
        last = p;
        onProgress(p);
      }
    }
  };
}

/**
 * Watch a file being preallocated (qemu-img create -o preallocation=full writes zeros and has no
 * -p): allocated bytes / expected bytes, every `intervalMs`. Returns a stop function.
 */
export function watchAllocation(file: string, expectedBytes: number, onProgress: OnProgress, intervalMs = 250): () => void {
  let last = -1;
  const tick = () => {
    try {
      const st = fs.statSync(file);
      const p = Math.min(99.99, (st.blocks * 512 * 100) / Math.max(1, expectedBytes));
      if (p > last) {
        last = p;
        onProgress(Math.floor(p * 100) / 100);
      }
    } catch {
      /* not there yet */
    }
  };
  const t = setInterval(tick, intervalMs);
  t.unref();
  return () => clearInterval(t);
}

/**
 * Draw progress on `stream` (stderr): a redrawn bar when it is a terminal; otherwise one
 * `progress: NN% LABEL` line per `step` percent (or nothing when quiet). Never through the CLI's
 * warning channel. Call `done()` at the end to finish the line.
 */
export function progressRenderer(
  label: string,
  opts: { stream?: NodeJS.WriteStream; quiet?: boolean; step?: number } = {},
): { update: OnProgress; done: () => void } {
  const stream = opts.stream ?? process.stderr;
  const tty = !!stream.isTTY;
  const step = opts.step ?? 10;
  let lastLine = -step;
  let drawn = false;
  const width = 30;
  return {
    update(p) {
      if (opts.quiet) return;
      if (tty) {
        const full = Math.round((p / 100) * width);
        stream.write(`\r${label} [${'#'.repeat(full)}${'.'.repeat(width - full)}] ${p.toFixed(1).padStart(5)}%`);
        drawn = true;
      } else if (p >= lastLine + step || (p >= 100 && lastLine < 100)) {
        lastLine = p >= 100 ? 100 : Math.floor(p / step) * step;
        // Not a terminal (a log, a pipe): plain `progress:` lines a script can grep, never `warning:`.
        stream.write(`progress: ${Math.floor(p)}% ${label}\n`);
      }
    },
    done() {
      if (tty && drawn) stream.write('\n');
    },
  };
}
