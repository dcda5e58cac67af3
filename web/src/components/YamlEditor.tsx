/**
 * The VM definition as YAML text with validation: every issue the API reports is listed with its
 * path and line, the textarea is marked invalid, and "Go to" selects the offending key.
 */
import { useMemo, useRef } from 'react';
import { isMap, isScalar, isSeq, parseDocument, type Node } from 'yaml';

export type Issue = { path: string; message: string };

/** "nics[1].mac" → ["nics", 1, "mac"] */
export function splitPath(p: string): (string | number)[] {
  const out: (string | number)[] = [];
  for (const m of p.matchAll(/([^.[\]]+)|\[(\d+)\]/g)) out.push(m[2] !== undefined ? Number(m[2]) : m[1]);
  return out;
}

/** Character range of the deepest node on `path` that exists in the YAML text. */
export function locate(text: string, path: string): [number, number] | null {
  let doc;
  try {
    doc = parseDocument(text);
  } catch {
    return null;
  }
  let node: unknown = doc.contents;
  let loc: [number, number] | null = (doc.contents as Node | null)?.range ? [doc.contents!.range![0], doc.contents!.range![1]] : null;
  for (const seg of splitPath(path)) {
    if (isMap(node)) {
      const pair = node.items.find((p) => isScalar(p.key) && String(p.key.value) === String(seg));
      if (!pair) break;
      const k = pair.key as Node;
      if (k.range) loc = [k.range[0], k.range[1]];
      node = pair.value;
    } else if (isSeq(node) && typeof seg === 'number' && node.items[seg]) {
      const item = node.items[seg] as Node;
      if (item.range) loc = [item.range[0], item.range[1]];
      node = item;
    } else break;
  }
  return loc;
}

const lineOf = (text: string, offset: number) => text.slice(0, offset).split('\n').length;

/**
 * A YAML syntax error comes as path "SOURCE:LINE" (src/definition/load.ts), LINE 1-based in the text
 * sent, which is the text in the editor. Its line is that one, not where the (half-parsed)
 * document's contents start, which is later when the text opens with a comment or `---`.
 */
export function syntaxLine(path: string): number | null {
  const m = /:(\d+)$/.exec(path);
  return m ? Number(m[1]) : null;
}

/** Character range of 1-based line `n` of `text` (its last line if the text is shorter). */
export function lineRange(text: string, n: number): [number, number] {
  const lines = text.split('\n');
  const k = Math.min(Math.max(1, n), lines.length) - 1;
  let start = 0;
  for (let i = 0; i < k; i++) start += lines[i]!.length + 1;
  return [start, start + lines[k]!.length];
}

export function YamlEditor({ value, onChange, issues, id, label }: { value: string; onChange: (v: string) => void; issues: Issue[]; id: string; label: string }) {
  const ta = useRef<HTMLTextAreaElement>(null);
  const located = useMemo(
    () =>
      issues.map((i) => {
        const line = syntaxLine(i.path);
        return { ...i, syntax: line !== null, loc: line !== null ? lineRange(value, line) : locate(value, i.path) };
      }),
    [issues, value],
  );
  const goTo = (loc: [number, number] | null) => {
    const t = ta.current;
    if (!t) return;
    t.focus();
    if (loc) {
      t.setSelectionRange(loc[0], loc[1]);
      // Scroll the selection into view: approximate by line height.
      const lh = parseFloat(getComputedStyle(t).lineHeight) || 18;
      t.scrollTop = Math.max(0, (lineOf(value, loc[0]) - 4) * lh);
    }
  };
  return (
    <div>
      <label htmlFor={id}>{label}</label>
      <textarea
        id={id}
        ref={ta}
        className="yaml"
        spellCheck={false}
        value={value}
        onChange={(e) => onChange(e.target.value)}
        aria-invalid={issues.length > 0}
        aria-describedby={issues.length > 0 ? `${id}-issues` : undefined}
        onKeyDown={(e) => {
          // Tab indents (YAML needs it); Escape then Tab leaves (Tab after Escape moves focus on).
          if (e.key === 'Tab' && !e.shiftKey && !(e.currentTarget.dataset.escaped === '1')) {
            e.preventDefault();
            const t = e.currentTarget;
            const s = t.selectionStart;
            onChange(value.slice(0, s) + '  ' + value.slice(t.selectionEnd));
            requestAnimationFrame(() => t.setSelectionRange(s + 2, s + 2));
          }
          e.currentTarget.dataset.escaped = e.key === 'Escape' ? '1' : '0';
        }}
      />
      <p className="muted" style={{ fontSize: 13, margin: '2px 0' }}>Tab indents by two spaces; press Escape, then Tab, to move on.</p>
      {located.length > 0 && (
        <div id={`${id}-issues`} className="alert" role="alert">
          <strong>{located.length === 1 ? '1 problem' : `${located.length} problems`} in this definition:</strong>
          <ul>
            {located.map((i, k) => (
              <li key={k} data-issue-path={i.path}>
                <span className="mono">{i.syntax ? 'YAML syntax' : i.path || '(top)'}</span>
                {i.loc && <span className="muted"> (line {lineOf(value, i.loc[0])})</span>}: {i.message}{' '}
                <button type="button" onClick={() => goTo(i.loc)} aria-label={`Go to ${i.syntax && i.loc ? `line ${lineOf(value, i.loc[0])}` : i.path || 'the top'} in the definition`}>
                  Go to
                </button>
              </li>
            ))}
          </ul>
        </div>
      )}
    </div>
  );
}
