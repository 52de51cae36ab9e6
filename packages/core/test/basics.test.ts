// Small modules: systems, registry errors, media types, package sources, display, redactUrl.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  DOCKER_MANIFEST_V2,
  displayValue,
  isSystem,
  MANIFEST_MEDIA_TYPES,
  OCI_IMAGE_MANIFEST,
  ociPlatformFor,
  FINISHED_STATES,
  IN_FLIGHT_STATES,
  NOT_STARTED_STATES,
  QUEUE_STATES,
  isFinishedState,
  PackageSourceSchema,
  redactUrl,
  buildQueueName,
  RegistryError,
  SYSTEMS,
  SystemSchema,
} from '../src/index.js';

describe('systems', () => {
  it('names one queue per system without ":"', () => {
    assert.equal(buildQueueName('x86_64-linux'), 'build-x86_64-linux');
    assert.equal(buildQueueName('aarch64-linux'), 'build-aarch64-linux');
    for (const system of SYSTEMS) assert.ok(!buildQueueName(system).includes(':'));
  });

  it('maps systems to OCI platforms', () => {
    assert.deepEqual(ociPlatformFor('x86_64-linux'), { architecture: 'amd64', os: 'linux' });
    assert.deepEqual(ociPlatformFor('aarch64-linux'), { architecture: 'arm64', os: 'linux' });
  });

  it('validates system names', () => {
    assert.equal(SystemSchema.parse('aarch64-linux'), 'aarch64-linux');
    assert.equal(SystemSchema.safeParse('x86_64-darwin').success, false);
    assert.equal(isSystem('x86_64-linux'), true);
    assert.equal(isSystem('arm64'), false);
  });
});

describe('RegistryError', () => {
  it('carries code, status and detail and renders the distribution-spec body', () => {
    const error = new RegistryError('MANIFEST_UNKNOWN', 'manifest unknown', { name: 'git' });
    assert.ok(error instanceof Error);
    assert.equal(error.status, 404);
    assert.deepEqual(error.toBody(), {
      errors: [{ code: 'MANIFEST_UNKNOWN', message: 'manifest unknown', detail: { name: 'git' } }],
    });
    assert.equal(
      JSON.stringify(new RegistryError('DENIED', 'no').toBody()),
      '{"errors":[{"code":"DENIED","message":"no","detail":null}]}',
    );
  });

  it('maps each code to its status', () => {
    const expected = {
      NAME_INVALID: 400,
      TAG_INVALID: 400,
      DIGEST_INVALID: 400,
      MANIFEST_UNKNOWN: 404,
      BLOB_UNKNOWN: 404,
      NAME_UNKNOWN: 404,
      BLOB_UPLOAD_UNKNOWN: 404,
      UNSUPPORTED: 405,
      UNAUTHORIZED: 401,
      DENIED: 403,
      TOOMANYREQUESTS: 429,
      UNKNOWN: 500,
    } as const;
    for (const [code, status] of Object.entries(expected)) {
      assert.equal(new RegistryError(code as keyof typeof expected, 'x').status, status, code);
    }
  });
});

describe('media types', () => {
  it('spells the manifest types', () => {
    assert.equal(OCI_IMAGE_MANIFEST, 'application/vnd.oci.image.manifest.v1+json');
    assert.equal(DOCKER_MANIFEST_V2, 'application/vnd.docker.distribution.manifest.v2+json');
    assert.deepEqual([...MANIFEST_MEDIA_TYPES], [OCI_IMAGE_MANIFEST, DOCKER_MANIFEST_V2]);
  });
});

describe('PackageSourceSchema', () => {
  it('accepts the three kinds', () => {
    for (const source of [
      { kind: 'path', path: '/srv/pkgs' },
      { kind: 'git', url: 'https://example.org/nixpkgs.git' },
      { kind: 'git', url: 'git@example.org:nixpkgs.git', ref: 'release-24.05' },
      { kind: 'channel', channel: 'nixos-24.05' },
    ]) {
      assert.deepEqual(PackageSourceSchema.parse(source), source);
    }
  });

  it('rejects bad sources', () => {
    for (const source of [
      { kind: 'path', path: 'relative/pkgs' },
      { kind: 'path', path: '/a\nb' },
      { kind: 'git', url: '--upload-pack=evil' },
      { kind: 'git', url: 'https://x y' },
      { kind: 'git', url: 'https://x', ref: '-f' },
      { kind: 'channel', channel: 'nixos unstable' },
      { kind: 'channel', channel: '../etc' },
      { kind: 'tarball', url: 'https://x' },
      { kind: 'path' },
    ]) {
      assert.equal(PackageSourceSchema.safeParse(source).success, false, JSON.stringify(source));
    }
  });
});

describe('redactUrl', () => {
  it('drops userinfo', () => {
    assert.equal(redactUrl('https://user:s3cret@git.example/nixpkgs.git'), 'https://git.example/nixpkgs.git');
    assert.equal(redactUrl('https://tok3n@git.example/nixpkgs.git'), 'https://git.example/nixpkgs.git');
    assert.equal(redactUrl('https://github.com/NixOS/nixpkgs'), 'https://github.com/NixOS/nixpkgs');
    assert.equal(redactUrl('git@github.com:NixOS/nixpkgs.git'), 'git@github.com:NixOS/nixpkgs.git');
    assert.equal(redactUrl('ssh://git:p%40ss@git.example:2222/nixpkgs'), 'ssh://git.example:2222/nixpkgs');
    assert.equal(redactUrl('file:///srv/git/nixpkgs'), 'file:///srv/git/nixpkgs');
  });
  it('redacts a value that is not a well-formed URL too', () => {
    assert.equal(redactUrl('redis//admin:s3cret@redis:6379'), 'redis//redis:6379');
  });
});

describe('displayValue', () => {
  it('quotes, escapes to printable ASCII and cuts long values', () => {
    assert.equal(displayValue('abc'), '"abc"');
    assert.equal(displayValue('a"b\n\u00e9'), '"a\\"b\\n\\u00e9"');
    assert.equal(displayValue('x'.repeat(50), 10), `"${'x'.repeat(10)}"... (50 characters)`);
  });
});

describe('build job states', () => {
  it('splits the queue states into in flight and finished, and knows which have not started', () => {
    assert.deepEqual([...IN_FLIGHT_STATES, ...FINISHED_STATES].sort(), [...QUEUE_STATES].sort());
    assert.deepEqual(IN_FLIGHT_STATES, ['waiting', 'active', 'delayed', 'prioritized', 'waiting-children']);
    assert.ok(NOT_STARTED_STATES.every((s) => (IN_FLIGHT_STATES as readonly string[]).includes(s)));
    assert.equal(isFinishedState('failed'), true);
    assert.equal(isFinishedState('active'), false);
    assert.equal(isFinishedState('unknown'), false);
  });
});
