// The users who may log in: an htpasswd file of bcrypt entries (NIXYARD_HTPASSWD), as Debian's
// `htpasswd -B` writes them and distribution reads them. Other hash kinds (MD5-crypt, SHA-1,
// crypt) are refused at start-up rather than silently never matching: they are too weak to keep.
//
// bcrypt is slow on purpose (milliseconds per check), and registry clients with Basic credentials
// send them on every request. So a successful check is remembered for a minute under an HMAC of
// the credentials, keyed by a secret that lives only in this process: the cache never holds a
// password or anything a password can be read back from. The file is read again when it changes,
// so an operator adds or removes a user without a restart.

import { createHmac, randomBytes } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import bcrypt from 'bcryptjs';
import { LRUCache } from 'lru-cache';

const BCRYPT_HASH = /^\$2[aby]\$(0[4-9]|[12][0-9]|3[01])\$[./A-Za-z0-9]{53}$/;
/** A user name as htpasswd allows it: no colon, no control characters. */
const USER_NAME = /^[^:\x00-\x1f\x7f]{1,255}$/;
/** How long a checked password is believed without bcrypt. */
const VERIFIED_TTL_MS = 60_000;
/** How often the file's modification time is looked at, at most. */
const RELOAD_CHECK_MS = 5_000;
/** Compared against for unknown users, so that they take as long as a wrong password. */
const DUMMY_HASH = bcrypt.hashSync('nixyard: no such user', 5);

export type PasswordCheck = 'ok' | 'unknown_user' | 'wrong_password';

/** Thrown at start-up for a file that cannot be used, naming the line. */
export class HtpasswdError extends Error {
  override readonly name = 'HtpasswdError';
}

/** Users and their bcrypt hashes, from the text of an htpasswd file. */
export function parseHtpasswd(text: string, origin = 'htpasswd'): Map<string, string> {
  const users = new Map<string, string>();
  text.split(/\r?\n/).forEach((raw, index) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    const colon = line.indexOf(':');
    const user = line.slice(0, colon);
    const hash = line.slice(colon + 1);
    // The line number and user, never the hash: this message is printed.
    if (colon <= 0 || !USER_NAME.test(user)) throw new HtpasswdError(`${origin}, line ${index + 1}: expected user:hash`);
    if (!BCRYPT_HASH.test(hash)) {
      throw new HtpasswdError(`${origin}, line ${index + 1} (${user}): not a bcrypt hash; create entries with \`htpasswd -B\``);
    }
    users.set(user, hash);
  });
  return users;
}

export class Htpasswd {
  private users: Map<string, string>;
  private modified: number;
  private checkedAt = Date.now();
  private readonly verified = new LRUCache<string, true>({ max: 10_000, ttl: VERIFIED_TTL_MS });
  private readonly cacheKey = randomBytes(32);

  /** Reads the file now: a problem stops start-up with HtpasswdError. */
  constructor(private readonly path: string) {
    this.modified = statSync(path).mtimeMs;
    this.users = parseHtpasswd(readFileSync(path, 'utf8'), path);
  }

  get size(): number {
    return this.users.size;
  }

  async check(user: string, password: string): Promise<PasswordCheck> {
    this.reloadIfChanged();
    const hash = this.users.get(user);
    const key = createHmac('sha256', this.cacheKey).update(user).update('\0').update(password).update('\0').update(hash ?? '').digest('base64');
    if (hash !== undefined && this.verified.has(key)) return 'ok';
    const matches = await bcrypt.compare(password, hash ?? DUMMY_HASH);
    if (hash === undefined) return 'unknown_user';
    if (!matches) return 'wrong_password';
    this.verified.set(key, true);
    return 'ok';
  }

  /** A changed file replaces the users; one that became unreadable or invalid keeps the old ones. */
  private reloadIfChanged(): void {
    const now = Date.now();
    if (now - this.checkedAt < RELOAD_CHECK_MS) return;
    this.checkedAt = now;
    try {
      const modified = statSync(this.path).mtimeMs;
      if (modified === this.modified) return;
      this.users = parseHtpasswd(readFileSync(this.path, 'utf8'), this.path);
      this.modified = modified;
      // The hash is part of each cache key, so a changed password is checked again anyway.
    } catch {
      // Kept as it was: a half-written file must not lock everybody out.
    }
  }
}
