// Text from an image, made safe for a terminal. An image may carry any string (a path, a comm, a
// cmdline chosen by whoever ran the process), and control characters in it would reach the
// terminal as commands (escape sequences that retitle it, clear it, or fake cr's own output).

/**
 * C0 and C1 controls, DEL, format characters (bidi overrides, zero-width marks), line and
 * paragraph separators, lone surrogates, and the backslash that starts every escape.
 */
const UNSAFE = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Cs}\\]/gu;

const escapeOne = (c: string): string => {
  if (c === '\\') return '\\\\';
  if (c === '\n') return '\\n';
  if (c === '\t') return '\\t';
  const code = c.codePointAt(0)!;
  const hex = code.toString(16);
  return code < 0x100 ? `\\x${hex.padStart(2, '0')}` : code < 0x10000 ? `\\u${hex.padStart(4, '0')}` : `\\u{${hex}}`;
};

/** s with every unsafe character (and `quote`, if given) as a backslash escape; plain text unchanged. */
export function printable(s: string, quote?: string): string {
  const out = s.replace(UNSAFE, escapeOne);
  return quote === undefined ? out : out.split(quote).join(`\\${quote}`);
}

/**
 * s with what a terminal would act on escaped, backslashes left as they are: for whole messages
 * whose parts from an image or a process are escaped already (printable), so nothing is escaped
 * twice, and whatever part was missed still cannot move the cursor or start a second line.
 */
export function terminalSafe(s: string): string {
  return s.replace(UNSAFE, (c) => (c === '\\' ? c : escapeOne(c)));
}

/**
 * JSON text with the characters JSON.stringify leaves raw but a terminal acts on (DEL, C1
 * controls, format characters, separators) as \u escapes: still valid JSON, parsing to the same
 * values. They can only stand inside strings, as every structural character is plain ASCII (the
 * C0 controls in strings JSON.stringify escapes itself; the raw newlines left are its layout).
 */
export function jsonForTerminal(json: string): string {
  const unit = (code: number): string => `\\u${code.toString(16).padStart(4, '0')}`;
  // Outside the BMP JSON has only surrogate pairs: each UTF-16 unit escaped on its own.
  return json.replace(/[\u007f-\u009f\p{Cf}\p{Zl}\p{Zp}]/gu, (c) => c.split('').map((u) => unit(u.charCodeAt(0))).join(''));
}
