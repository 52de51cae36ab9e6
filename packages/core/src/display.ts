// Display: how untrusted input is quoted inside error messages and logs. Names and env values can
// be huge or hold control characters and non-ASCII look-alikes; echoing them raw would let a client
// write into our logs or hide what was wrong. Everything shown goes through here: cut short, quoted,
// and escaped to printable ASCII.

const DEFAULT_MAX = 40;

/**
 * A URL without its userinfo (`scheme://user:token@host/...` → `scheme://host/...`): a token in
 * NIXERY_PKGS_REPO or a password in REDIS_URL must reach no page, log line or error message. It
 * works on any text with a `//…@` in it, so a malformed value is redacted too. An scp-like
 * `git@host:path` names an ssh user, not a secret, and is kept.
 */
export function redactUrl(url: string): string {
  return url.replace(/\/\/[^/]*@/, '//');
}

/**
 * `value` as a double-quoted, printable-ASCII string literal, cut to `max` UTF-16 code units
 * (with `...` and the full length appended when cut). Control and non-ASCII characters appear as
 * JSON escapes (`\n`, `\u00e9`), so the result is safe in a log line or an HTTP body.
 */
export function displayValue(value: string, max = DEFAULT_MAX): string {
  const cut = value.length > max;
  const shown = cut ? value.slice(0, max) : value;
  const quoted = JSON.stringify(shown).replace(
    /[^\x20-\x7e]/g,
    (ch) => `\\u${ch.charCodeAt(0).toString(16).padStart(4, '0')}`,
  );
  return cut ? `${quoted}... (${value.length} characters)` : quoted;
}
