import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  canonicalImageName,
  parseDigest,
  parseImageName,
  parseImageRequest,
  parseReference,
  RegistryError,
} from '../src/index.js';

/** Asserts that `fn` throws a RegistryError with `code`, and returns it. */
function rejects(fn: () => unknown, code: string): RegistryError {
  try {
    fn();
  } catch (error) {
    assert.ok(error instanceof RegistryError, `expected a RegistryError, got ${String(error)}`);
    assert.equal(error.code, code);
    assert.equal(error.status, 400);
    return error;
  }
  assert.fail(`expected ${code}, but nothing was thrown`);
}

describe('parseImageName', () => {
  it('sorts and de-duplicates packages so spellings of one image agree', () => {
    assert.deepEqual(parseImageName('git/htop'), { packages: ['git', 'htop'], system: 'x86_64-linux' });
    assert.deepEqual(parseImageName('htop/git'), parseImageName('git/htop'));
    assert.deepEqual(parseImageName('htop/git/htop/git').packages, ['git', 'htop']);
  });

  it('sorts by code unit, uppercase before lowercase, independent of locale', () => {
    assert.deepEqual(parseImageName('zlib/Zed/a_b/a-b/1x').packages, ['1x', 'Zed', 'a-b', 'a_b', 'zlib']);
  });

  it('expands shell', () => {
    assert.deepEqual(parseImageName('shell').packages, ['bashInteractive', 'coreutils', 'moreutils', 'nano']);
    assert.deepEqual(parseImageName('shell/git').packages, [
      'bashInteractive',
      'coreutils',
      'git',
      'moreutils',
      'nano',
    ]);
    // An explicit package that shell also adds appears once.
    assert.deepEqual(parseImageName('nano/shell').packages, parseImageName('shell').packages);
  });

  it('selects aarch64-linux with arm64, at any position', () => {
    assert.deepEqual(parseImageName('arm64/shell/jq'), {
      packages: ['bashInteractive', 'coreutils', 'jq', 'moreutils', 'nano'],
      system: 'aarch64-linux',
    });
    assert.deepEqual(parseImageName('jq/arm64'), { packages: ['jq'], system: 'aarch64-linux' });
    assert.equal(parseImageName('jq').system, 'x86_64-linux');
  });

  it('accepts nested attribute paths', () => {
    assert.deepEqual(parseImageName('xorg.xev').packages, ['xorg.xev']);
    assert.deepEqual(parseImageName('python3Packages.numpy/git').packages, ['git', 'python3Packages.numpy']);
    assert.deepEqual(parseImageName('_private/a-b_c.d-e/x1').packages, ['_private', 'a-b_c.d-e', 'x1']);
  });

  it('accepts 64 components and a 100-character component', () => {
    const names = Array.from({ length: 64 }, (_, i) => `p${i}`);
    assert.equal(parseImageName(names.join('/')).packages.length, 64);
    assert.deepEqual(parseImageName('a'.repeat(100)).packages, ['a'.repeat(100)]);
  });

  it('rejects a name of meta-packages only', () => {
    const error = rejects(() => parseImageName('arm64'), 'NAME_INVALID');
    assert.match(error.message, /no package/);
  });

  // [input, text the message must contain, reason pattern]
  const hostile: Array<[string, string, RegExp]> = [
    ['git/"evil"', '"\\"evil\\""', /quote/],
    ["git/it's", `"it's"`, /quote/],
    ['a`b', '"a`b"', /quote/],
    ['${builtins.abort}', '"${builtins.abort}"', /\$\{/],
    ['git/..', '".."', /empty attribute segment/],
    ['a..b', '"a..b"', /empty attribute segment/],
    ['.a', '".a"', /empty attribute segment/],
    ['a.', '"a."', /empty attribute segment/],
    ['-a', '"-a"', /starting with "-"/],
    ['a.-b', '"a.-b"', /starting with "-"/],
    ['git/hello world', '"hello world"', /whitespace/],
    ['git/h\u00e9llo', '"h\\u00e9llo"', /non-ASCII/],
    ['git/\u{1F600}', '"\\ud83d\\ude00"', /non-ASCII/],
    ['git/zero\u200bwidth', '"zero\\u200bwidth"', /non-ASCII/],
    ['a\\b', '"a\\\\b"', /"\\\\"/],
    ['a;b', '"a;b"', /";"/],
    ['$(id)', '"$(id)"', /"\$"/],
    ['a\u0000b', '"a\\u0000b"', /control character/],
    ['a\nb', '"a\\nb"', /whitespace/],
    ['a\u007fb', '"a\\u007fb"', /control character/],
    ['a:b', '"a:b"', /":"/],
    ['a+b', '"a+b"', /"\+"/],
  ];
  for (const [input, shown, reason] of hostile) {
    it(`rejects ${JSON.stringify(input)} naming the component`, () => {
      const error = rejects(() => parseImageName(input), 'NAME_INVALID');
      assert.ok(error.message.includes(shown), `message ${JSON.stringify(error.message)} should contain ${shown}`);
      assert.match(error.message, reason);
      // Messages are printable ASCII whatever the input was.
      assert.match(error.message, /^[\x20-\x7e]+$/);
    });
  }

  it('rejects a 300-character component, showing it cut short', () => {
    const long = 'x'.repeat(300);
    const error = rejects(() => parseImageName(`git/${long}`), 'NAME_INVALID');
    assert.match(error.message, /longer than 100 characters/);
    assert.ok(error.message.includes(`"${'x'.repeat(40)}"... (300 characters)`), error.message);
    assert.ok(error.message.length < 200, 'message is bounded');
  });

  it('rejects 65 components', () => {
    const names = Array.from({ length: 65 }, (_, i) => `p${i}`);
    const error = rejects(() => parseImageName(names.join('/')), 'NAME_INVALID');
    assert.match(error.message, /65 components, at most 64/);
    assert.match(error.message, /"p64"/);
  });

  it('rejects a huge name cheaply and with a bounded message', () => {
    const error = rejects(() => parseImageName('a/'.repeat(5_000_000)), 'NAME_INVALID');
    assert.match(error.message, /longer than 6463 characters/);
    assert.ok(error.message.length < 200);
  });

  for (const [input, position] of [
    ['a//b', 2],
    ['/a', 1],
    ['a/', 2],
    ['/', 1],
  ] as const) {
    it(`rejects the empty component in ${JSON.stringify(input)}`, () => {
      const error = rejects(() => parseImageName(input), 'NAME_INVALID');
      assert.match(error.message, new RegExp(`component ${position}: empty`));
    });
  }

  it('rejects the empty name', () => {
    const error = rejects(() => parseImageName(''), 'NAME_INVALID');
    assert.match(error.message, /empty/);
  });

  it('gives a distribution-spec error body', () => {
    const error = rejects(() => parseImageName('a b'), 'NAME_INVALID');
    const body = error.toBody();
    assert.equal(body.errors.length, 1);
    assert.equal(body.errors[0]?.code, 'NAME_INVALID');
    assert.equal(body.errors[0]?.message, error.message);
    assert.deepEqual(JSON.parse(JSON.stringify(body)), body);
  });
});

describe('parseReference', () => {
  it('accepts tags', () => {
    for (const tag of ['latest', 'v1.2.3', '_x', 'A-b_c.d', '0123456789abcdef0123456789abcdef01234567', 'a'.repeat(128)]) {
      assert.deepEqual(parseReference(tag), { kind: 'tag', tag });
    }
  });

  for (const bad of ['-x', '.x', 'a'.repeat(129), 'a/b', '', 'a b', 'caf\u00e9', 'a$b']) {
    it(`rejects tag ${JSON.stringify(bad.length > 20 ? `${bad.slice(0, 10)}...` : bad)} with TAG_INVALID`, () => {
      rejects(() => parseReference(bad), 'TAG_INVALID');
    });
  }

  const hex = 'ab'.repeat(32);
  it('accepts a sha256 digest', () => {
    assert.deepEqual(parseReference(`sha256:${hex}`), { kind: 'digest', digest: `sha256:${hex}` });
  });

  for (const bad of [
    `sha256:${hex.toUpperCase()}`,
    `sha256:${hex.slice(2)}`,
    `sha256:${hex}00`,
    `sha512:${hex}${hex}`,
    'sha256:zz',
    'sha256:',
    ':',
    `SHA256:${hex}`,
    `sha256:${hex}\n`,
  ]) {
    it(`rejects digest ${JSON.stringify(bad.slice(0, 20))} with DIGEST_INVALID (400)`, () => {
      const error = rejects(() => parseReference(bad), 'DIGEST_INVALID');
      assert.equal(error.status, 400);
    });
  }

  it('parseDigest is the same check for blob URLs', () => {
    assert.equal(parseDigest(`sha256:${hex}`), `sha256:${hex}`);
    rejects(() => parseDigest(hex), 'DIGEST_INVALID');
    rejects(() => parseDigest(`sha256:${'z'.repeat(64)}`), 'DIGEST_INVALID');
  });
});

describe('parseImageRequest and canonicalImageName', () => {
  it('combines name and reference', () => {
    assert.deepEqual(parseImageRequest('htop/arm64/git', 'latest'), {
      packages: ['git', 'htop'],
      system: 'aarch64-linux',
      reference: { kind: 'tag', tag: 'latest' },
    });
  });

  it('checks the name before the reference', () => {
    rejects(() => parseImageRequest('a b', '-bad'), 'NAME_INVALID');
    rejects(() => parseImageRequest('git', '-bad'), 'TAG_INVALID');
  });

  it('spells an image one way and parses back to it', () => {
    assert.equal(canonicalImageName(parseImageName('htop/git')), 'git/htop');
    assert.equal(canonicalImageName(parseImageName('jq/arm64')), 'arm64/jq');
    assert.equal(canonicalImageName(parseImageName('shell')), 'bashInteractive/coreutils/moreutils/nano');
    const spec = parseImageName('arm64/shell/python3Packages.numpy');
    assert.deepEqual(parseImageName(canonicalImageName(spec)), spec);
    assert.equal(canonicalImageName({ packages: ['b', 'a', 'b'], system: 'x86_64-linux' }), 'a/b');
  });
});
